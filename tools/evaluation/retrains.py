"""`eval replay --retrains K`: the batch layer re-run K times during the replay, as a schedule runs
it in production, and the replay switched to each new version as serving and the speed layer
hot-swap when CURRENT moves: the Lambda trade-off of batch cadence against the speed layer.

Boundaries (`boundaries`): with c the cut (the first version's as-of, a bucket start), t the event
time of the last replayed event and B = batch.bucket_s in ms,

    b_j = c + B * floor(j * (t - c) / ((K + 1) * B))        for j = 1 .. K,

the K instants that split the replayed period [c, t] into K + 1 equal parts, each floored to a
bucket start (the batch job's as-of contract, as the cut is). They must be strictly increasing and
after the cut (b_K < t holds by construction); a period too short for that is an error, not a
silent merge of retrains.

At b_j, before the first replayed event at or after b_j is asked about (`Retrainer.__call__`):
1. the real batch job runs as of b_j, in this process (batch.session's get-or-create: every run
   reuses the Spark session of the first), on every event of the dataset before b_j. The work dir's
   master dataset holds the whole dataset from the start (tools.evaluation.history), so the
   replayed events before b_j are there already; the new manifest's event count is checked against
   the replay's. A version built as of b_j from those events by the same code is reused;
2. the new version is loaded and every variant switched to it (`variants.switch`): the served
   version of popularity, batch_only, speed_only and merged, the speed state's scoring views and its
   trending rates. The speed state's writes (counts, recent, fresh) stay, as they stay in Redis,
   and the feed merges the new version with speed counts at or after its as-of.
The references (item_knn, recent_popular) are fixed references and are not retrained: they learn
from every replayed event as it is applied.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambdastack.errors import DataError
from lambdastack.keys import bucket_start
from lambdastack.settings import Settings
from tools.evaluation.split import Split
from tools.evaluation.variants import Loaded, Variants, switch

DAY_MS = 86_400_000


def boundaries(cut_ms: int, last_ms: int, k: int, bucket_s: int) -> tuple[int, ...]:
    """The K retrain instants over the replayed period [cut_ms, last_ms] (the module docstring)."""
    if k < 0:
        raise DataError(f"--retrains must be 0 or more, not {k}")
    span = last_ms - cut_ms
    out = tuple(bucket_start(cut_ms + j * span // (k + 1), bucket_s) for j in range(1, k + 1))
    if any(a >= b for a, b in zip((cut_ms, *out), out, strict=False)):
        raise DataError(
            f"--retrains {k}: the replayed period ({span / 3_600_000:.1f} h from the cut to the last "
            f"replayed event) does not hold {k + 1} parts of at least one bucket "
            f"(batch.bucket_s = {bucket_s} s); ask for fewer retrains"
        )
    return out


def events_before(split: Split, as_of_ms: int) -> int:
    """How many of the split's events lie strictly before `as_of_ms` (what a batch run as of it reads)."""
    return len(split.history) + bisect.bisect_left(split.test, as_of_ms, key=lambda e: e.event_time_ms)


def utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(ms / 1000))


@dataclass(frozen=True)
class Run:
    """One retrain: its as-of, the version it gave, seconds to build (or find) and load it."""

    as_of_ms: int
    version: str
    build_s: float
    reused: bool


@dataclass
class Retrainer:
    """Called by the replay at each boundary: builds the version as of it and switches to it."""

    boundaries: tuple[int, ...]
    build: Callable[[int], tuple[Loaded, bool]]  # as-of -> (the version, loaded; reused)
    echo: Callable[[str], None] = print
    runs: list[Run] = field(default_factory=list)

    def __call__(self, as_of_ms: int, variants: Variants) -> Variants:
        started = time.monotonic()
        loaded, reused = self.build(as_of_ms)
        run = Run(as_of_ms, str(loaded.served.version), round(time.monotonic() - started, 1), reused)
        self.runs.append(run)
        self.echo(
            f"[eval] retrain {len(self.runs)}/{len(self.boundaries)} as of {utc(as_of_ms)} "
            f"({as_of_ms} ms): {run.version} in {run.build_s:.0f} s" + (" (reused)" if reused else "")
        )
        return switch(variants, loaded)


def batch_retrainer(
    ws: Settings, split: Split, at: tuple[int, ...], echo: Callable[[str], None] = print
) -> Retrainer:
    """A retrainer running the real batch job in the work settings `ws` (tools.evaluation.history)."""
    from tools.evaluation.history import batch_fingerprint, retrain_version
    from tools.evaluation.variants import load_version

    fingerprint = batch_fingerprint(ws)

    def build(as_of_ms: int) -> tuple[Loaded, bool]:
        vid, reused = retrain_version(ws, as_of_ms, events_before(split, as_of_ms), fingerprint, echo)
        return load_version(ws, vid), reused

    return Retrainer(at, build, echo)


@dataclass
class Segment:
    """The replayed events one version answered: from event index `first`, `events` of them,
    `queries` asked, the first and last asked query times."""

    version: str
    as_of_ms: int
    first: int
    events: int = 0
    queries: int = 0
    first_query_ms: int | None = None
    last_query_ms: int | None = None

    def asked(self, t_ms: int) -> None:
        self.queries += 1
        self.first_query_ms = t_ms if self.first_query_ms is None else self.first_query_ms
        self.last_query_ms = t_ms


def record(
    k: int, at: Sequence[int], split: Split, runs: Sequence[Run], segments: Sequence[Segment]
) -> dict[str, Any]:
    """The JSON-ready account of the retrains: K, the boundaries, each run and each segment."""
    return {
        "k": k,
        "boundaries_ms": list(at),
        "every_days": round((at[-1] - split.as_of_ms) / len(at) / DAY_MS, 1) if at else None,
        "runs": [
            {
                "as_of_ms": r.as_of_ms,
                "version": r.version,
                "build_s": r.build_s,
                "reused": r.reused,
                "events": events_before(split, r.as_of_ms),
            }
            for r in runs
        ],
        "build_s": round(sum(r.build_s for r in runs), 1),
        "segments": [vars(s) for s in segments],
    }
