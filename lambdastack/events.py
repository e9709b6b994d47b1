"""The interaction event contract (schema version 1): fields, validation, JSON on the wire.

Wire form, one JSON object per Kafka record, keyed by `user_id`:
    {"event_id": "...", "user_id": "...", "item_id": "...", "type": "view",
     "value": 12.5, "event_time": "2026-11-28T13:00:00.123Z", "schema_version": 1}
`event_time` is RFC 3339 with a zone; it is held as epoch milliseconds (UTC).
`value` means watch seconds for `watch`, the rating (0.5..5) for `rating`, and 1.0 otherwise.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from lambdastack.errors import ValidationError

SCHEMA_VERSION = 1
MAX_ID_LEN = 128
# user and item ids become parts of Redis keys (`lambdastack.keys`), whose separator is ':', so
# they may not hold one: an item "foo:min" would otherwise write into item "foo"'s minute hash
KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_KEY_ID_RE = re.compile(KEY_ID_PATTERN)
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
_ID_RE = re.compile(EVENT_ID_PATTERN)
# an id may be given as a non-negative integer up to this (the largest a JSON number holds exactly
# in every parser, RFC 8259 section 6)
MAX_INT_ID = 2**53 - 1
# RFC 3339's date-time (section 5.6): what `parse_time` takes, checked after the zone is known
_RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# event times outside this range are rejected as clock errors
_MIN_TIME_MS = 0
_MAX_FUTURE_MS = 24 * 3600 * 1000


class EventType(StrEnum):
    VIEW = "view"
    CLICK = "click"
    LIKE = "like"
    SHARE = "share"
    SKIP = "skip"
    RATING = "rating"
    WATCH = "watch"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)
FIELDS = ("event_id", "user_id", "item_id", "type", "value", "event_time", "schema_version")


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    user_id: str
    item_id: str
    type: str
    value: float
    event_time_ms: int
    schema_version: int = SCHEMA_VERSION

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready wire form."""
        d = asdict(self)
        d["event_time"] = format_time(d.pop("event_time_ms"))
        return d

    def to_json(self) -> bytes:
        return json.dumps(self.to_wire(), separators=(",", ":")).encode()


def format_time(ms: int) -> str:
    """Epoch milliseconds to RFC 3339 UTC with milliseconds."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time(value: Any) -> int:
    """RFC 3339 string (with a zone) to epoch milliseconds; raises ValueError with a reason."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string such as 2026-11-28T13:00:00Z")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{_shown(value)} is not an RFC 3339 timestamp") from None
    if dt.tzinfo is None:
        raise ValueError(f"{_shown(value)} has no time zone (add Z or an offset)")
    if not _RFC3339_RE.fullmatch(value):
        raise ValueError(f"{_shown(value)} is not an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SS[.fff]Z)")
    try:
        return int(round(dt.timestamp() * 1000))
    except (OverflowError, ValueError):
        raise ValueError(f"{_shown(value)} is outside the range of event times") from None


def _shown(value: Any) -> str:
    """A value as a reason quotes it: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_key_id(s: str) -> bool:
    """Whether a user or item id may be part of a Redis key (KEY_ID_PATTERN)."""
    return _KEY_ID_RE.fullmatch(s) is not None


def _check_id(field: str, v: Any, errors: list[tuple[str, str]]) -> str:
    if isinstance(v, float) and v.is_integer():  # an integer as JSON Schema means it: 7.0 is 7
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, str | int):
        errors.append((field, "must be a string"))
        return ""
    if isinstance(v, int) and not 0 <= v <= MAX_INT_ID:
        errors.append((field, f"as an integer must be between 0 and {MAX_INT_ID}"))
        return ""
    s = str(v)
    if not s:
        errors.append((field, "must not be empty"))
    elif len(s) > MAX_ID_LEN:
        errors.append((field, f"must be at most {MAX_ID_LEN} characters"))
    elif field != "event_id" and not _KEY_ID_RE.fullmatch(s):
        errors.append((field, "may hold only letters, digits and _ . - (not first)"))
    elif not _ID_RE.fullmatch(s):
        errors.append((field, "may hold only letters, digits and _ . : - (not first)"))
    return s


def _check_value(etype: str, v: Any, errors: list[tuple[str, str]]) -> float:
    if v is None:
        return 1.0
    if isinstance(v, bool) or not isinstance(v, int | float):
        errors.append(("value", "must be a number"))
        return 0.0
    try:
        x = float(v)
    except OverflowError:
        errors.append(("value", "is too large"))
        return 0.0
    if x != x or x in (float("inf"), float("-inf")):
        errors.append(("value", "must be a finite number"))
    elif etype == EventType.RATING and not 0.0 <= x <= 5.0:
        errors.append(("value", "a rating must be between 0 and 5"))
    elif x < 0:
        errors.append(("value", "must not be negative"))
    return x


def validate(raw: Any, now_ms: int | None = None) -> tuple[Event | None, list[tuple[str, str]]]:
    """Check one decoded wire object; return the event, or None and every bad field with why.

    Total: whatever `raw` holds, this returns (it never raises), and every reason is printable
    UTF-8 (a field name with a lone surrogate is escaped), so a consumer can always pass it on.
    """
    try:
        event, errors = _validate(raw, now_ms)
    except Exception as e:  # a shape no check foresaw: rejected with a reason, never a crash
        return None, [("<event>", f"could not be validated ({type(e).__name__})")]
    return event, [(_printable(f), _printable(r)) for f, r in errors]


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _validate(raw: Any, now_ms: int | None) -> tuple[Event | None, list[tuple[str, str]]]:
    if not isinstance(raw, dict):
        return None, [("<event>", "must be a JSON object")]
    errors: list[tuple[str, str]] = []
    for name in sorted(set(raw) - set(FIELDS)):
        errors.append((name[:MAX_ID_LEN], "is not a field of the event schema"))
    for name in ("event_id", "user_id", "item_id", "type", "event_time"):
        if raw.get(name) is None:
            errors.append((name, "is required"))
    version = raw.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        errors.append(("schema_version", f"must be {SCHEMA_VERSION}, got {_shown(version)}"))
    ids = {f: _check_id(f, raw[f], errors) for f in ("event_id", "user_id", "item_id") if f in raw}
    etype = raw.get("type")
    if etype is not None and etype not in EVENT_TYPES:
        errors.append(("type", f"must be one of {', '.join(EVENT_TYPES)}; got {_shown(etype)}"))
    value = _check_value(str(etype), raw.get("value"), errors)
    time_ms = 0
    if raw.get("event_time") is not None:
        try:
            time_ms = parse_time(raw["event_time"])
        except ValueError as e:
            errors.append(("event_time", str(e)))
        else:
            if time_ms < _MIN_TIME_MS:
                errors.append(("event_time", "must not be before 1970"))
            elif now_ms is not None and time_ms > now_ms + _MAX_FUTURE_MS:
                errors.append(("event_time", "is more than a day in the future"))
    if errors:
        return None, errors
    return Event(
        event_id=ids["event_id"],
        user_id=ids["user_id"],
        item_id=ids["item_id"],
        type=str(etype),
        value=value,
        event_time_ms=time_ms,
    ), []


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one wire event (as OpenAPI 3.1 documents it): exactly what `validate`
    accepts, but for the two clock rules no schema can state, which the description gives."""

    def id_schema(pattern: str) -> dict[str, Any]:
        text = {"type": "string", "pattern": pattern}
        return {"anyOf": [text, {"type": "integer", "minimum": 0, "maximum": MAX_INT_ID}]}

    def event(types: list[str], value_max: float, value_doc: str) -> dict[str, Any]:
        value = {"type": "number", "minimum": 0, "maximum": value_max}
        properties = {
            "event_id": id_schema(EVENT_ID_PATTERN),
            "user_id": id_schema(KEY_ID_PATTERN),
            "item_id": id_schema(KEY_ID_PATTERN),
            "type": {"enum": types},
            "value": {"anyOf": [value, {"type": "null"}], "description": value_doc},
            "event_time": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 with a zone; not before 1970, at most 24 h after the server's clock",
            },
            "schema_version": {"const": SCHEMA_VERSION},
        }
        required = ["event_id", "user_id", "item_id", "type", "event_time"]
        return {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }

    others = [t for t in EVENT_TYPES if t != EventType.RATING]
    return {
        "title": "Event",
        "oneOf": [
            event([EventType.RATING.value], 5.0, "the rating, 0 to 5 (null: 1)"),
            event(others, sys.float_info.max, "watch seconds for watch, else 1 (null: 1)"),
        ],
    }


def decode(payload: bytes | str, now_ms: int | None = None) -> tuple[Event | None, list[tuple[str, str]]]:
    """Decode one wire record (JSON) and validate it."""
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        return None, [("<record>", _printable(f"is not valid JSON: {e}"))]
    except RecursionError:
        return None, [("<record>", "is nested too deeply to be an event")]
    except Exception as e:  # json.loads of bytes may raise others (e.g. TypeError): never a crash
        return None, [("<record>", f"could not be decoded ({type(e).__name__})")]
    return validate(raw, now_ms)


def parse(raw: Any) -> Event:
    """Validate or raise ValidationError naming every bad field."""
    event, errors = validate(raw)
    if event is None:
        raise ValidationError(errors)
    return event


def describe_errors(errors: list[tuple[str, str]]) -> str:
    """One line naming every bad field and why."""
    return "; ".join(f"{f}: {r}" for f, r in errors)
