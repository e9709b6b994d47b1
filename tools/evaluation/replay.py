"""`lambdastack eval replay`: the prequential replay of a MovieLens-format folder.

Protocol: events in time order (stable for ties); the batch layer runs on the history before
the bucket-aligned cut (tools.evaluation.split); the rest is replayed in time order. For
each test interaction (u, i, t) whose item u has not interacted with before, every variant is
asked for u's top-k feed at t from the state built so far (the version plus all earlier test
events), then the event is applied to the speed state. Repeated interactions are applied but not
asked about. The target's rank is taken among the feed's items minus everything u has seen
(ties pessimistic, tools.evaluation.metrics); an item outside the feed is a miss.
With `--retrains K` the batch job re-runs K times during the replay and every variant switches to
each new version before the first event at or after its as-of (tools.evaluation.retrains).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdastack.events import Event
from lambdastack.settings import Settings
from tools.evaluation.metrics import Scoreboard, rank_in_feed
from tools.evaluation.references import REFERENCES, ItemKnn, RecentPopular, Reference, answer
from tools.evaluation.retrains import Retrainer, Segment
from tools.evaluation.speedstate import SpeedState
from tools.evaluation.split import KNOWN, NEW, Split, segment
from tools.evaluation.variants import MERGED, VARIANTS, Query, Variants, load_version


def references(split: Split) -> list[Reference]:
    """The reference recommenders over the split's history (issue #12 defines them)."""
    items = dict.fromkeys(e.item_id for e in split.history)
    return [RecentPopular(items), ItemKnn(split.history)]


@dataclass(frozen=True)
class Asked:
    """One asked question and every variant's answer (the consistency test replays these)."""

    user_id: str
    item_id: str
    t_ms: int
    feeds: dict[str, list[str]]
    version: str = ""  # the batch version that answered


@dataclass(frozen=True)
class Replayed:
    board: Scoreboard
    asked: list[Asked]  # with keep_queries only
    segments: list[Segment]  # one per version answering, in replay order


def open_variants(settings: Settings, version: str, k: int) -> Variants:
    """The four variants over a published version (in `settings`' views dir) and a new speed state."""
    from serving.feed import FeedConfig

    loaded = load_version(settings, version)
    state = SpeedState(settings, loaded.scorers(), loaded.rates_per_hour, loaded.served.view.as_of_ms)
    return Variants.over(loaded, state, FeedConfig.from_settings(settings.serving), k)


class Progress:
    """One line every `every_s` seconds: events, queries, rate, running NDCG@k, time left."""

    def __init__(self, total: int, echo: Callable[[str], None], every_s: float = 5.0):
        self.total, self.echo, self.every_s = total, echo, every_s
        self.start = self.last = time.monotonic()

    def pause(self, seconds: float) -> None:
        """Leave `seconds` (a retrain) out of the rate and the time left."""
        self.start += seconds

    def tick(self, done: int, board: Scoreboard, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else 0.0
        names = (*VARIANTS, *REFERENCES)
        ndcg = " ".join(f"{v} {board.ndcg_at_k(v):.4f}" for v in names if (v, "all") in board.cells)
        n = board.cells[(MERGED, "all")].n if (MERGED, "all") in board.cells else 0
        self.echo(
            f"[eval {now - self.start:7.1f}s] {done}/{self.total} events, {n} queries, "
            f"{rate:.0f} events/s, ~{left:.0f}s left | NDCG@{board.k}: {ndcg}"
        )


def _ask(
    queries: dict[str, Query],
    refs: Sequence[Reference],
    e: Event,
    seen: set[str],
    seg: str,
    board: Scoreboard,
) -> dict[str, list[str]]:
    """Ask every variant and reference for e.user_id's feed at e's time; score them against e.item_id."""
    feeds = {}
    for name, query in queries.items():
        t0 = time.perf_counter()
        ranked = query(e.user_id, e.event_time_ms)
        elapsed = time.perf_counter() - t0
        scored = [(i, s) for i, s, _ in ranked]
        board.add(name, seg, rank_in_feed(scored, e.item_id, seen), elapsed, e.event_time_ms)
        shown = [r for r in ranked if r[0] not in seen][: board.k]
        board.recommended(name, (i for i, _, _ in shown), (by for _, _, by in shown))
        feeds[name] = [i for i, _ in scored]
    for ref in refs:
        t0 = time.perf_counter()
        rank, top = answer(ref, e.user_id, e.item_id, seen, board.k)
        board.add(ref.name, seg, rank, time.perf_counter() - t0, e.event_time_ms)
        board.recommended(ref.name, top)
    return feeds


def replay(
    variants: Variants,
    split: Split,
    echo: Callable[[str], None] = print,
    limit: int | None = None,
    keep_queries: bool = False,
    refs: Sequence[Reference] = (),
    retrain: Retrainer | None = None,
) -> Replayed:
    """Ask, then apply, each test event in time order; `limit` stops after that many events;
    `refs` are asked too (whole-catalogue ranks) and told every event after it was asked; at each
    of `retrain`'s boundaries, before the first event at or after it, the variants switch to the
    version it builds."""
    queries: dict[str, Query] = variants.queries()
    known = frozenset(e.user_id for e in split.history)
    seen: dict[str, set[str]] = defaultdict(set)
    for e in split.history:
        seen[e.user_id].add(e.item_id)
    test: Sequence[Event] = split.test if limit is None else split.test[:limit]
    board = Scoreboard(variants.k, (KNOWN, NEW))
    asked: list[Asked] = []
    segments = [Segment(variants.version, variants.full.view.as_of_ms, 0)]
    pending = list(retrain.boundaries if retrain is not None else ())[::-1]  # the next one last
    progress = Progress(len(test), echo)
    for n, e in enumerate(test):
        while retrain is not None and pending and e.event_time_ms >= pending[-1]:
            started = time.monotonic()
            variants = retrain(pending.pop(), variants)
            queries = variants.queries()
            progress.pause(time.monotonic() - started)
            segments.append(Segment(variants.version, variants.full.view.as_of_ms, n))
        user_seen = seen[e.user_id]
        if e.item_id not in user_seen:
            feeds = _ask(queries, refs, e, user_seen, segment(e.user_id, known), board)
            segments[-1].asked(e.event_time_ms)
            if keep_queries:
                asked.append(Asked(e.user_id, e.item_id, e.event_time_ms, feeds, variants.version))
        variants.state.apply(e)
        for ref in refs:
            ref.apply(e)
        user_seen.add(e.item_id)
        segments[-1].events += 1
        progress.tick(n + 1, board)
    progress.tick(len(test), board, force=True)
    return Replayed(board, asked, segments)


def run(
    settings: Settings,
    dataset_dir: Path,
    fraction: float,
    k: int,
    work_dir: Path | None = None,
    limit: int | None = None,
    echo: Callable[[str], None] = print,
    retrains: int = 0,
) -> dict[str, Any]:
    """Split, build the batch version, replay (re-running the batch job `retrains` times on the
    way: tools.evaluation.retrains); the JSON-ready result."""
    from tools.datasets.movielens import read_folder
    from tools.evaluation.history import build_version
    from tools.evaluation.retrains import batch_retrainer, boundaries, record, utc
    from tools.evaluation.split import events_from_table, split_events

    started = time.monotonic()
    events = events_from_table(read_folder(dataset_dir).events)
    sp = split_events(events, fraction, settings.batch.bucket_s)
    echo(
        f"[eval] {len(events)} events; cut at {sp.as_of_ms} ms (bucket-aligned): "
        f"{len(sp.history)} history ({sp.history_share:.4f}), {len(sp.test)} replayed"
    )
    last_ms = (sp.test if limit is None else sp.test[:limit])[-1].event_time_ms
    at = boundaries(sp.as_of_ms, last_ms, retrains, settings.batch.bucket_s)
    if at:
        echo(f"[eval] {retrains} retrains, as of " + ", ".join(utc(b) for b in at))
    work = work_dir or settings.state_dir / "eval" / f"{dataset_dir.name}-{fraction}"
    ws, vid = build_version(settings, dataset_dir, work, sp.as_of_ms, len(sp.history), echo)
    variants = open_variants(ws, vid, k)
    retrainer = batch_retrainer(ws, sp, at, echo) if at else None
    out = replay(variants, sp, echo, limit, refs=references(sp), retrain=retrainer)
    runs = retrainer.runs if retrainer is not None else []
    return {
        "benchmark": "eval",
        "dataset": str(dataset_dir),
        "split": fraction,
        "k": k,
        "as_of_ms": sp.as_of_ms,
        "bucket_s": settings.batch.bucket_s,
        "events": {"total": len(events), "history": len(sp.history), "replayed": len(sp.test)},
        "limit": limit,
        "version": vid,
        "retrains": record(retrains, at, sp, runs, out.segments),
        "variants": out.board.summary(catalogue=len(variants.full.view.matrix.index)),
        "wall_s": round(time.monotonic() - started, 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
