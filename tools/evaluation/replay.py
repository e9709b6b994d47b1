"""`lambdastack eval replay`: the prequential replay of a MovieLens-format folder.

Protocol: events in time order (stable for ties); the batch layer runs on the history before
the bucket-aligned cut (tools.evaluation.split); the rest is replayed in time order. For
each test interaction (u, i, t) whose item u has not interacted with before, every variant is
asked for u's top-k feed at t from the state built so far (the version plus all earlier test
events), then the event is applied to the speed state. Repeated interactions are applied but not
asked about. The target's rank is taken among the feed's items minus everything u has seen
(ties pessimistic, tools.evaluation.metrics); an item outside the feed is a miss.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdastack.events import Event
from lambdastack.published import PublishedVersion
from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout
from tools.evaluation.metrics import Scoreboard, rank_in_feed
from tools.evaluation.references import REFERENCES, ItemKnn, RecentPopular, Reference, answer
from tools.evaluation.speedstate import SpeedState
from tools.evaluation.split import KNOWN, NEW, Split, segment
from tools.evaluation.variants import MERGED, SPEED_ONLY, VARIANTS, Query, Variants


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


def open_variants(settings: Settings, version: str, k: int) -> Variants:
    """The four variants over a published version (in `settings`' views dir) and a new speed state."""
    from serving import served_version
    from serving.feed import FeedConfig
    from speed import baseline, scoring_view
    from tools.evaluation.variants import catalogue_only, catalogue_scorer

    published = PublishedVersion(VersionLayout(settings.path(settings.data.views_dir)), version)
    full = served_version.load(published, settings.serving.ab)
    empty = served_version.ServedVersion(catalogue_only(full.view), full.ranker)
    scorer = scoring_view.load(published)
    scorers = {MERGED: scorer, SPEED_ONLY: catalogue_scorer(scorer)}
    state = SpeedState(settings, scorers, baseline.load(published).rates_per_hour)
    return Variants(full, empty, state, FeedConfig.from_settings(settings.serving), k)


class Progress:
    """One line every `every_s` seconds: events, queries, rate, running NDCG@k, time left."""

    def __init__(self, total: int, echo: Callable[[str], None], every_s: float = 5.0):
        self.total, self.echo, self.every_s = total, echo, every_s
        self.start = self.last = time.monotonic()

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


def replay(
    variants: Variants,
    split: Split,
    echo: Callable[[str], None] = print,
    limit: int | None = None,
    keep_queries: bool = False,
    refs: Sequence[Reference] = (),
) -> tuple[Scoreboard, list[Asked]]:
    """Ask, then apply, each test event in time order; `limit` stops after that many events;
    `refs` are asked too (whole-catalogue ranks) and told every event after it was asked."""
    queries: dict[str, Query] = variants.queries()
    known = frozenset(e.user_id for e in split.history)
    seen: dict[str, set[str]] = defaultdict(set)
    for e in split.history:
        seen[e.user_id].add(e.item_id)
    test: Sequence[Event] = split.test if limit is None else split.test[:limit]
    board = Scoreboard(variants.k, (KNOWN, NEW))
    asked: list[Asked] = []
    progress = Progress(len(test), echo)
    for n, e in enumerate(test):
        user_seen = seen[e.user_id]
        if e.item_id not in user_seen:
            seg = segment(e.user_id, known)
            feeds = {}
            for name, query in queries.items():
                t0 = time.perf_counter()
                ranked = query(e.user_id, e.event_time_ms)
                elapsed = time.perf_counter() - t0
                scored = [(i, s) for i, s, _ in ranked]
                board.add(name, seg, rank_in_feed(scored, e.item_id, user_seen), elapsed, e.event_time_ms)
                shown = [r for r in ranked if r[0] not in user_seen][: variants.k]
                board.recommended(name, (i for i, _, _ in shown), (by for _, _, by in shown))
                feeds[name] = [i for i, _ in scored]
            for ref in refs:
                t0 = time.perf_counter()
                rank, top = answer(ref, e.user_id, e.item_id, user_seen, variants.k)
                board.add(ref.name, seg, rank, time.perf_counter() - t0, e.event_time_ms)
                board.recommended(ref.name, top)
            if keep_queries:
                asked.append(Asked(e.user_id, e.item_id, e.event_time_ms, feeds))
        variants.state.apply(e)
        for ref in refs:
            ref.apply(e)
        user_seen.add(e.item_id)
        progress.tick(n + 1, board)
    progress.tick(len(test), board, force=True)
    return board, asked


def run(
    settings: Settings,
    dataset_dir: Path,
    fraction: float,
    k: int,
    work_dir: Path | None = None,
    limit: int | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Split, build the batch version, replay; the JSON-ready result."""
    from tools.datasets.movielens import read_folder
    from tools.evaluation.history import build_version
    from tools.evaluation.split import events_from_table, split_events

    started = time.monotonic()
    events = events_from_table(read_folder(dataset_dir).events)
    sp = split_events(events, fraction, settings.batch.bucket_s)
    echo(
        f"[eval] {len(events)} events; cut at {sp.as_of_ms} ms (bucket-aligned): "
        f"{len(sp.history)} history ({sp.history_share:.4f}), {len(sp.test)} replayed"
    )
    work = work_dir or settings.state_dir / "eval" / f"{dataset_dir.name}-{fraction}"
    ws, vid = build_version(settings, dataset_dir, work, sp.as_of_ms, len(sp.history), echo)
    variants = open_variants(ws, vid, k)
    board, _ = replay(variants, sp, echo, limit, refs=references(sp))
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
        "variants": board.summary(catalogue=len(variants.full.view.matrix.index)),
        "wall_s": round(time.monotonic() - started, 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
