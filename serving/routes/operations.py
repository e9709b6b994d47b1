"""Operations: liveness, readiness, versions, Prometheus metrics, and the benchmark's trivial
endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from lambdastack import __version__
from serving.routes.context import context, json_response
from serving.schemas import HealthOut, ReadyOut, VersionOut

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
    """A version and its model are loaded and Redis answers."""
    ctx = context(request)
    snap = ctx.state.served
    checks = {
        "batch_version": snap.version is not None,
        "model": snap.ranker is not None,
        "redis": await ctx.state.speed.ping(),
    }
    ok = all(checks.values())
    return json_response(ReadyOut(ok, checks), 200 if ok else 503)


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
    body = context(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/ping", include_in_schema=False)
async def ping() -> Response:
    """The trivial endpoint the benchmark compares the feed with (same app, same middleware)."""
    return json_response({"ok": True})
