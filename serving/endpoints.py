"""The /v1 routes. Each handler takes the current snapshot once and uses only it."""

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Path, Query, Response

from lambdastack.errors import NoVersionError, ValidationError
from lambdastack.events import validate
from lambdastack.keys import ALL_TYPES
from lambdastack.settings import Settings
from serving import schemas
from serving.feed import Feed, FeedConfig, batch_side, rank_feed
from serving.ingest import EventSink
from serving.metrics import Metrics
from serving.predict import parse_instances
from serving.ranking import apply_since
from serving.schemas import ID_PATTERN
from serving.security import KeyStore, require_scope
from serving.served_version import ServedVersion
from serving.state import ServingState

UserId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
ItemId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": schemas.Error, "description": "a parameter or the body is invalid"},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.Error, "description": "the body is not JSON"},
    413: {"model": schemas.Error, "description": "the body is larger than serving.max_body_bytes"},
}


@dataclass
class Context:
    settings: Settings
    state: ServingState
    metrics: Metrics
    sink: EventSink
    keys: KeyStore
    feed: FeedConfig


def now_ms() -> int:
    return int(time.time() * 1000)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json"
    )


def feed_body(feed: Feed, snap: ServedVersion) -> dict[str, Any]:
    titles = snap.view.titles
    return {
        "user_id": feed.user_id,
        "items": [
            {
                "item_id": i.item_id,
                "title": titles.get(i.item_id),
                "genre": i.genre,
                "score": round(i.score, 6),
                "count": i.batch_count + i.speed_count,
                "batch_count": i.batch_count,
                "speed_count": i.speed_count,
                "sources": list(i.sources),
            }
            for i in feed.items
        ],
        "view_version": feed.view_version,
        "model_version": feed.model_version,
        "variant": feed.variant,
        "as_of_ms": feed.as_of_ms,
        "degraded": feed.degraded,
        "cold_start": feed.cold_start,
        "signal_age_ms": feed.signal_age_ms,
        "candidates": feed.candidates,
    }


def _record_feed(m: Metrics, feed: Feed) -> None:
    m.child(m.feeds, feed.variant, feed.model_version or "none").inc()
    per_source: dict[str, int] = defaultdict(int)
    for item in feed.items:
        for source in item.sources:
            per_source[source] += 1
    for source, n in per_source.items():
        m.child(m.items, source, feed.variant).inc(n)
    if feed.degraded:
        m.child(m.degraded, "/v1/users/{user_id}/feed").inc()
    if feed.signal_age_ms is not None:
        m.signal_age.observe(feed.signal_age_ms / 1000)


def _predict_rows(snap: ServedVersion, parsed: list, signals: Any, t: int) -> np.ndarray:
    """Feature rows of the valid instances, in order (pairs from both views)."""
    view = snap.view
    recent, counts = signals if signals is not None else ({}, {})
    by_user: dict[str, list[int]] = defaultdict(list)
    rows: list[np.ndarray | None] = [None] * len(parsed)
    for n, p in enumerate(parsed):
        if p.row is not None:
            rows[n] = np.asarray(p.row, dtype=np.float64)
        elif p.pair is not None:
            by_user[p.pair[0]].append(n)
    for user, idx in by_user.items():
        state = apply_since(view.side, view.user_state(user), view.as_of_ms, recent.get(user, ()))
        items = [parsed[n].pair[1] for n in idx]
        c = view.counts(items) + np.asarray([counts.get(i, 0) for i in items], dtype=np.int64)
        x = view.matrix.features(state, view.matrix.rows(items), c, t)
        for n, row in zip(idx, x, strict=True):
            rows[n] = row
    return np.asarray([r for r in rows if r is not None]).reshape(-1, 6)


def router(ctx: Context) -> APIRouter:
    r = APIRouter(prefix="/v1", responses=ERRORS)
    s = ctx.settings.serving

    @r.get("/users/{user_id}/feed", response_model=schemas.FeedOut, tags=["feed"])
    async def feed(
        user_id: UserId, k: Annotated[int | None, Query(ge=1, le=s.feed_k_max)] = None
    ) -> Response:
        """The user's ranked feed from the batch and speed views (never 5xx: degraded instead)."""
        snap = ctx.state.served  # one version for the whole request
        k = k or s.feed_k_default
        t = now_ms()
        side = batch_side(snap, user_id, k, ctx.feed)  # cached per version: known candidates
        speed = await ctx.state.speed.snapshot(user_id, snap.view.as_of_ms, t, side.known)
        result = rank_feed(snap, speed, user_id, k, t, ctx.feed)
        _record_feed(ctx.metrics, result)
        return json_response(feed_body(result, snap))

    @r.get("/users/{user_id}/profile", response_model=schemas.ProfileOut, tags=["users"])
    async def profile(user_id: UserId) -> Response:
        """The batch profile merged with the live state from the speed view."""
        snap = ctx.state.served
        view = snap.view
        live = await ctx.state.speed.user(user_id)
        recent, fresh = live if live is not None else ((), None)
        state = apply_since(view.side, view.user_state(user_id), view.as_of_ms, recent)
        row = view.profiles.get(user_id)
        batch = None
        if row is not None:
            keep = (
                "n",
                "cluster",
                "top_genres",
                "top_tags",
                "first_t",
                "active_days",
                "distinct_items",
                "last_item",
                "last_t",
            )
            batch = {key: row[key] for key in keep if key in row}
            batch["history_items"] = len(view.seen(user_id))
        since = [i for i in recent if i.event_time_ms >= view.as_of_ms]
        body = {
            "user_id": user_id,
            "view_version": view.version,
            "known_to_batch": row is not None,
            "batch": batch,
            "recent": [
                {"item_id": i.item_id, "type": i.type, "value": i.value, "event_time_ms": i.event_time_ms}
                for i in recent
            ],
            "fresh": None
            if fresh is None
            else {
                "view_version": fresh.view_version,
                "model_version": fresh.model_version,
                "event_time_ms": fresh.event_time_ms,
                "items": [list(x) for x in fresh.items],
            },
            "merged": {
                "events": state.n,
                "events_since_as_of": len(since),
                "genres": dict(sorted(state.genres.items(), key=lambda g: (-g[1], g[0]))),
                "last_item": state.last_item,
                "last_t": state.last_t,
                "cluster": view.cluster_of(user_id, state),
            },
            "degraded": live is None,
        }
        if live is None:
            ctx.metrics.degraded.labels("/v1/users/{user_id}/profile").inc()
        return json_response(body)

    @r.get(
        "/items/{item_id}",
        response_model=schemas.ItemOut,
        responses={404: {"model": schemas.Error, "description": "no view knows the item"}},
        tags=["items"],
    )
    async def item(item_id: ItemId) -> Response:
        """Batch attributes and live counters of an item (since the as-of, and 1m / 10m / 1h)."""
        view = ctx.state.served.view
        live = await ctx.state.speed.item(item_id, view.as_of_ms, now_ms())
        since, windows = live if live is not None else ({ALL_TYPES: 0}, {})
        known = item_id in view.index or item_id in view.titles or since[ALL_TYPES] > 0
        if not known and not any(w.get(ALL_TYPES, 0) for w in windows.values()):
            return json_response(
                {"detail": f"item {item_id} is in neither the batch nor the speed view"}, 404
            )
        if live is None:
            ctx.metrics.degraded.labels("/v1/items/{item_id}").inc()
        batch_count = view.count(item_id)
        return json_response(
            {
                "item_id": item_id,
                "title": view.titles.get(item_id),
                "genres": list(view.side.genres.get(item_id, ())),
                "count": batch_count + since[ALL_TYPES],
                "batch_count": batch_count,
                "speed_count": since[ALL_TYPES],
                "speed_by_type": {t: n for t, n in since.items() if t != ALL_TYPES},
                "windows": windows,
                "view_version": view.version,
                "degraded": live is None,
            }
        )

    @r.get("/trending", response_model=schemas.TrendingOut, tags=["items"])
    async def trending(k: Annotated[int, Query(ge=1, le=s.feed_k_max)] = 20) -> Response:
        """The newest complete trending window of the speed layer."""
        view = ctx.state.served.view
        got = await ctx.state.speed.trending(k)
        end, items = got if got is not None else (None, [])
        if got is None:
            ctx.metrics.degraded.labels("/v1/trending").inc()
        return json_response(
            {
                "window_end_ms": end,
                "items": [{"item_id": i, "title": view.titles.get(i), "score": sc} for i, sc in items],
                "degraded": got is None,
            }
        )

    @r.post(
        "/predict",
        response_model=schemas.PredictOut,
        tags=["model"],
        responses={503: {"model": schemas.Error, "description": "no model is loaded"}, **BODY_ERRORS},
    )
    async def predict(body: schemas.PredictIn) -> Response:
        """Scores of instances ({user_id, item_id} or {features}) by the current version's model."""
        if len(body.instances) > s.predict_instances_max:
            raise ValidationError([("instances", f"must hold at most {s.predict_instances_max} instances")])
        snap = ctx.state.served
        if snap.ranker is None:
            raise NoVersionError("no ranking model is loaded yet; publish a batch version first")
        parsed = parse_instances(body.instances)
        pairs = [p.pair for p in parsed if p.pair is not None]
        t = now_ms()
        signals = None
        if pairs:
            users, items = sorted({u for u, _ in pairs}), sorted({i for _, i in pairs})
            signals = await ctx.state.speed.signals_for(users, items, snap.view.as_of_ms, t)
        scores = iter(snap.ranker.predict(_predict_rows(snap, parsed, signals, t)).tolist())
        out = [{"error": p.error} if p.error is not None else {"score": next(scores)} for p in parsed]
        return json_response(
            {
                "predictions": out,
                "model_version": snap.ranker.version,
                "view_version": snap.view.version,
                "degraded": bool(pairs) and signals is None,
            }
        )

    write_events = require_scope(ctx.keys, "events:write")

    @r.post(
        "/events",
        status_code=202,
        response_model=schemas.EventsOut,
        tags=["events"],
        responses={
            401: {"model": schemas.Error},
            403: {"model": schemas.Error},
            503: {"model": schemas.Error, "description": "Kafka did not take the events"},
            **BODY_ERRORS,
        },
    )
    async def events(body: schemas.EventsIn, _who: Annotated[Any, Depends(write_events)]) -> Response:
        """Validate interaction events and write them to Kafka (needs an API key with events:write)."""
        t, good, errors = now_ms(), [], []
        for n, raw in enumerate(body.events):
            event, errs = validate(raw, now_ms=t)
            errors += [(f"events[{n}].{f}", reason) for f, reason in errs]
            if event is not None:
                good.append(event)
        if errors:
            raise ValidationError(errors)
        await ctx.sink.send_all(good)
        return json_response(
            {"accepted": len(good), "event_ids": [e.event_id for e in good], "topic": ctx.sink.topic}, 202
        )

    return r
