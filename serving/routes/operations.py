"""Operations: liveness, readiness, versions, Prometheus metrics, and the benchmark's trivial
endpoint."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from lambdastack import __version__
from lambdastack.speed_health import REDIS_AWAY, SpeedHealth, judge
from serving.routes.context import context, json_response
from serving.schemas import HealthOut, ReadyOut, SpeedHealthOut, VersionOut

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=HealthOut)
async def health() -> Response:
    """The process is up."""
    return json_response(HealthOut("ok"))


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "not ready"}},
)
async def ready(request: Request) -> Response:
    """A version and its model are loaded and Redis answers. `speed` shows the speed layer's
    health (dead, lagging, rebuilding) without deciding readiness: feeds are served without it."""
    ctx = context(request)
    snap = ctx.state.served
    checks = {
        "batch_version": snap.version is not None,
        "model": snap.ranker is not None,
        "redis": await ctx.state.speed.ping(),
    }
    ok = all(checks.values())
    h = await speed_health(request)
    speed = SpeedHealthOut(h.ok, h.problem, h.beat_age_ms, h.job_age_ms, h.lag, h.replaying)
    return json_response(ReadyOut(ok, checks, speed), 200 if ok else 503)


async def speed_health(request: Request) -> SpeedHealth:
    """The speed layer's health from its heartbeat in Redis, also set in the metrics."""
    ctx = context(request)
    s = ctx.state.settings.speed
    beat = await ctx.state.speed.loader_heartbeat()
    if beat is None:
        health = REDIS_AWAY
    else:
        health = judge(beat, int(time.time() * 1000), s.stale_after_s, s.max_lag_records)
    ctx.metrics.speed_state(health)
    return health


@router.get("/version", response_model=VersionOut)
async def version(request: Request) -> Response:
    """The code version and the versions loaded."""
    snap = context(request).state.served
    return json_response(
        VersionOut(
            code_version=__version__,
            view_version=snap.version,
            model_version=snap.ranker.version if snap.ranker else None,
            challenger_version=snap.challenger.version if snap.challenger else None,
            as_of_ms=snap.view.as_of_ms,
        )
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    await speed_health(request)  # the speed layer's gauges as of this scrape
    body = context(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/ping", include_in_schema=False)
async def ping() -> Response:
    """The trivial endpoint the benchmark compares the feed with (same app, same middleware)."""
    return json_response({"ok": True})
