"""GET /v1/users/{user_id}/feed: the user's ranked feed (the latency-critical route)."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Request, Response

from lambdastack.speedview import SpeedRead
from serving.feed import batch_side, rank_feed
from serving.metrics import Metrics
from serving.routes.context import (
    ERRORS,
    context,
    feed_parameters,
    feed_parameters_openapi,
    json_response,
    now_ms,
)
from serving.schemas import FeedOut

SCORE_DIGITS = 6  # the model's float32 scores hold about 7 significant digits
router = APIRouter(prefix="/v1", responses=ERRORS, tags=["feed"])


def _record(m: Metrics, feed: FeedOut, speed: SpeedRead) -> None:
    m.child(m.feeds, feed.variant, feed.model_version or "none").inc()
    if speed.ok:  # a read that fell back to the buckets is visible here
        m.child(m.live_reads, "total" if speed.from_total else "buckets").inc()
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


@router.get(
    "/users/{user_id}/feed",
    response_model=FeedOut,
    openapi_extra={"parameters": feed_parameters_openapi()},  # read by the handler itself
)
async def feed(request: Request) -> Response:
    """The user's ranked feed from the batch and speed views (never 5xx: degraded instead)."""
    ctx = context(request)
    s = ctx.settings.serving
    user_id, k = feed_parameters(request, s.feed_k_default, s.feed_k_max)
    snap = ctx.state.served  # one version for the whole request
    t = now_ms()
    side = batch_side(snap, user_id, k, ctx.feed)  # cached per version: known candidates
    speed = await ctx.state.speed.read_feed(user_id, snap.view.as_of_ms, t, side.known)
    result = rank_feed(snap, speed, user_id, k, t, ctx.feed)
    _record(ctx.metrics, result, speed)
    for item in result.items:
        item.score = round(item.score, SCORE_DIGITS)
    return json_response(result)
