"""The speed layer's heartbeat and how a reader judges it: one contract for the loader that writes
it and for the readers (the API's `/ready` and metrics, `lambdastack stack status`).

`{p}:speed:loader` (lambdastack.keys) is a hash the loader rewrites every `speed.epoch_check_s`:
- `beat_ms`: when the loader last wrote it (epoch ms);
- `job_ms`: when the Flink job last answered RUNNING (epoch ms; 0 before it did);
- `lag`: records of the signals and users topics not loaded into Redis yet (-1: not known yet);
- `replaying`: 1 while the loader rebuilds the speed view from the earliest offset.

The speed job runs when both times are at most `speed.stale_after_s` old (a live loader says the
Flink job answered RUNNING). The speed layer is healthy when it runs, the lag is at most
`speed.max_lag_records`, and no replay runs. Otherwise the judgement names the first problem in a
sentence.

The drift hash `{p}:drift` is read the same way by every reader (the API's `/v1/status`,
`lambdastack doctor`): `drift_report`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

BEAT, JOB, LAG, REPLAYING = "beat_ms", "job_ms", "lag", "replaying"


def heartbeat(now_ms: int, job_ms: int | None, lag: int | None, replaying: bool) -> dict[str, int]:
    """The fields the loader writes."""
    return {BEAT: now_ms, JOB: job_ms or 0, LAG: -1 if lag is None else lag, REPLAYING: int(replaying)}


@dataclass(frozen=True, slots=True)
class SpeedHealth:
    ok: bool
    problem: str  # "" when ok, else a sentence
    beat_age_ms: int | None  # None: no heartbeat at all
    job_age_ms: int | None
    lag: int | None
    replaying: bool
    job_running: bool  # the loader's heartbeat and the Flink job's last RUNNING answer are fresh


# what a reader says when the heartbeat cannot be read at all
REDIS_AWAY = SpeedHealth(
    False, "Redis does not answer, so the speed layer cannot be seen", None, None, None, False, False
)


def _int(raw: Mapping[str, str | bytes], field: str) -> int | None:
    value = raw.get(field)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def judge(
    raw: Mapping[str, str | bytes] | Mapping[bytes, bytes] | None,
    now_ms: int,
    stale_after_s: float,
    max_lag: int,
) -> SpeedHealth:
    """The health a heartbeat hash (field -> value, as Redis returns it; None or {} when absent) shows."""
    fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in (raw or {}).items()}
    beat, job, lag = _int(fields, BEAT), _int(fields, JOB), _int(fields, LAG)
    replaying = _int(fields, REPLAYING) == 1
    lag = None if lag is None or lag < 0 else lag
    beat_age = None if beat is None else max(0, now_ms - beat)
    job_age = None if not job else max(0, now_ms - job)
    stale_ms = stale_after_s * 1000
    running = beat_age is not None and beat_age <= stale_ms and job_age is not None and job_age <= stale_ms
    if beat_age is None:
        problem = "no speed loader has written its heartbeat (speed run is not running, or never started)"
    elif beat_age > stale_ms:
        problem = f"the speed loader has not written its heartbeat for {beat_age / 1000:.0f} s"
    elif job_age is None or job_age > stale_ms:
        since = "" if job_age is None else f" for {job_age / 1000:.0f} s"
        problem = f"the Flink job has not answered as running{since}"
    elif replaying:
        problem = "the speed loader is rebuilding the speed view from the earliest offset"
    elif lag is not None and lag > max_lag:
        problem = f"the speed loader is {lag:,} records behind (more than speed.max_lag_records, {max_lag:,})"
    else:
        problem = ""
    return SpeedHealth(not problem, problem, beat_age, job_age, lag, replaying, running)


DRIFT_META = ("alert", "window_end_ms", "events", "view_version")


@dataclass(frozen=True)
class DriftReport:
    """The newest drift window the loader wrote (`{p}:drift`, lambdastack.keys): PSI per model
    input against the batch baseline, and whether any passed `speed.drift_psi_alert`."""

    psi: dict[str, float]
    alert: bool
    window_end_ms: int | None
    events: int | None
    view_version: str | None

    def worst(self) -> tuple[str, float] | None:
        """The feature with the highest PSI (None before a window closed)."""
        return max(self.psi.items(), key=lambda kv: kv[1]) if self.psi else None


def drift_report(raw: Mapping[str, str | bytes]) -> DriftReport:
    """The drift hash as read from Redis (str or bytes values); fields that are not numbers are
    left out of `psi`."""
    fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
    psi: dict[str, float] = {}
    for name, value in fields.items():
        if name in DRIFT_META:
            continue
        with contextlib.suppress(ValueError):
            psi[name] = float(value)
    version = fields.get("view_version")
    return DriftReport(
        psi,
        _int(fields, "alert") == 1,
        _int(fields, "window_end_ms"),
        _int(fields, "events"),
        version.decode() if isinstance(version, bytes) else version,
    )
