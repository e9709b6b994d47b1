"""Request and response bodies of the API, as they appear in its OpenAPI document.

Requests are pydantic models: FastAPI validates every body that comes in. Responses are defined
once each, as the dataclasses below: a handler builds one and `serving.routes.context.
json_response` writes it with orjson; `response_model=` declares it for the OpenAPI document
only, and tests/unit/test_serving_api.py validates every endpoint's answer against it (with
pydantic, `extra="forbid"`). The feed's body is what `serving.feed.rank_feed` returns. Why
dataclasses and orjson rather than pydantic models, measured for a feed of 20 items (CPU time):
building the dataclasses and writing them with orjson 29 µs; building a validated pydantic model
and `model_dump_json` 70 µs, `model_construct` 111 µs; FastAPI validating and serialising a
returned model 130 µs (the hand-built dict this replaces, with frozen dataclasses from the
ranker: 48 µs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from lambdastack.events import KEY_ID_PATTERN
from lambdastack.events import json_schema as event_json_schema

ID_PATTERN = KEY_ID_PATTERN
ID_RE = re.compile(ID_PATTERN)


@dataclass(slots=True)
class Out:
    """A response body: pydantic validates it (in tests) with no field beyond the declared ones."""

    __pydantic_config__ = ConfigDict(extra="forbid")


@dataclass(slots=True)
class Error(Out):
    detail: Any
    request_id: str | None = None


@dataclass(slots=True)
class FeedItemOut(Out):
    item_id: str
    title: str | None
    genre: str | None
    score: Annotated[
        float,
        Field(description="P(positive) from the ranking model, or merged popularity without one"),
    ]
    count: Annotated[int, Field(description="events before the as-of plus events since (no double counting)")]
    batch_count: int
    speed_count: int
    sources: tuple[str, ...]
    because: Annotated[
        str | None,
        Field(description="recent_neighbours: the user's recent item whose neighbour list holds this one"),
    ] = None


@dataclass(slots=True)
class FeedOut(Out):
    user_id: str
    items: tuple[FeedItemOut, ...]
    view_version: str | None
    model_version: str | None
    variant: str
    as_of_ms: int
    degraded: bool
    cold_start: bool
    signal_age_ms: Annotated[
        int | None, Field(description="age of the freshest speed signal used (null: none)")
    ]
    candidates: int


@dataclass(slots=True)
class ItemOut(Out):
    item_id: str
    title: str | None
    genres: list[str]
    count: int
    batch_count: int
    speed_count: int
    speed_by_type: dict[str, int]
    windows: Annotated[
        dict[str, dict[str, int]], Field(description="events per type in the last 1m / 10m / 1h")
    ]
    view_version: str | None
    degraded: bool


@dataclass(slots=True)
class TrendingItemOut(Out):
    item_id: str
    title: str | None
    score: float


@dataclass(slots=True)
class TrendingOut(Out):
    window_end_ms: int | None
    items: list[TrendingItemOut]
    degraded: bool


@dataclass(slots=True)
class InteractionOut(Out):
    item_id: str
    type: str
    value: float
    event_time_ms: int


@dataclass(slots=True)
class FreshOut(Out):
    """The speed layer's fresh candidates for the user: [item_id, score] pairs."""

    view_version: str
    model_version: str
    event_time_ms: int
    items: list[tuple[str, float]]


@dataclass(slots=True)
class MergedOut(Out):
    """The user's state at now: the batch state as of the as-of plus the events since."""

    events: int
    events_since_as_of: int
    genres: dict[str, int]
    last_item: str | None
    last_t: int | None
    cluster: int | None


@dataclass(slots=True)
class ProfileOut(Out):
    user_id: str
    view_version: str | None
    known_to_batch: bool
    batch: dict[str, Any] | None
    recent: list[InteractionOut]
    fresh: FreshOut | None
    merged: MergedOut
    degraded: bool


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: list[dict[str, Any]] = Field(min_length=1, description="at most serving.predict_instances_max")


@dataclass(slots=True)
class ScoreOut(Out):
    score: float


@dataclass(slots=True)
class InstanceErrorOut(Out):
    error: str


@dataclass(slots=True)
class PredictOut(Out):
    predictions: list[ScoreOut | InstanceErrorOut]
    model_version: str | None
    view_version: str | None
    degraded: bool


MAX_EVENTS = 500


class EventsIn(BaseModel):
    """Events are checked by `lambdastack.events.validate` (the contract every layer shares, 422
    naming each bad field), so pydantic takes them as objects; the document shows that contract's
    JSON Schema, which is what validate accepts."""

    model_config = ConfigDict(extra="forbid")
    events: Annotated[
        list[dict[str, Any]],
        WithJsonSchema(
            {"type": "array", "items": event_json_schema(), "minItems": 1, "maxItems": MAX_EVENTS}
        ),
    ] = Field(min_length=1, max_length=MAX_EVENTS)


@dataclass(slots=True)
class EventsOut(Out):
    accepted: int
    event_ids: list[str]
    topic: str


@dataclass(slots=True)
class HealthOut(Out):
    status: str


@dataclass(slots=True)
class VersionOut(Out):
    code_version: str
    view_version: str | None
    model_version: str | None
    challenger_version: str | None
    as_of_ms: int


@dataclass(slots=True)
class SpeedHealthOut(Out):
    """The speed layer as its loader's heartbeat shows it (lambdastack.speed_health); feeds are
    served without it, degraded, so it does not decide `ready`."""

    ok: bool
    problem: str  # "" when ok, else a sentence
    heartbeat_age_ms: int | None
    job_age_ms: int | None
    lag_records: int | None
    replaying: bool


@dataclass(slots=True)
class UsersOut(Out):
    """A random sample of the users the served batch version knows."""

    users: list[str]
    known: int  # users in the version
    view_version: str | None


@dataclass(slots=True)
class DriftOut(Out):
    """The speed layer's newest drift window (lambdastack.speed_health.DriftReport)."""

    psi: Annotated[dict[str, float], Field(description="population stability index per model input")]
    alert: Annotated[bool, Field(description="some PSI passed speed.drift_psi_alert")]
    window_end_ms: int | None
    events: int | None
    view_version: str | None


@dataclass(slots=True)
class ABOut(Out):
    enabled: bool
    challenger_version: str | None
    challenger_share: Annotated[
        float, Field(description="users (by a hash of their id) ranked by the challenger")
    ]


@dataclass(slots=True)
class StatusOut(Out):
    """What the explorer's status panel shows: the versions served, the A/B split, the speed
    layer's health, its newest drift window, and whether answers are degraded now."""

    code_version: str
    view_version: str | None
    model_version: str | None
    as_of_ms: int
    ab: ABOut
    speed: SpeedHealthOut
    drift: DriftOut | None  # None: Redis does not answer (no window yet: empty psi)
    degraded: Annotated[bool, Field(description="no batch version loaded, or Redis does not answer")]
    ui_events: Annotated[bool, Field(description="the explorer page may post events (serving.ui_key)")]


@dataclass(slots=True)
class ReadyOut(Out):
    ready: bool
    checks: dict[str, bool]
    speed: SpeedHealthOut
