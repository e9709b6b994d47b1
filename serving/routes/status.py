"""GET /v1/status: what the explorer's status panel shows, in one answer."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from lambdastack import __version__
from serving.routes.context import ERRORS, context, json_response
from serving.routes.operations import speed_health
from serving.schemas import ABOut, DriftOut, SpeedHealthOut, StatusOut

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["ops"])


@router.get("/status", response_model=StatusOut)
async def status(request: Request) -> Response:
    """The versions served, the A/B split, the speed layer's health and newest drift window, and
    whether answers are degraded now (no batch version, or Redis away)."""
    ctx = context(request)
    snap = ctx.state.served
    h = await speed_health(request)
    report = await ctx.state.speed.drift()
    drift = None
    if report is not None:
        drift = DriftOut(report.psi, report.alert, report.window_end_ms, report.events, report.view_version)
    ab = ABOut(
        snap.challenger is not None, snap.challenger.version if snap.challenger else None, snap.ab_share
    )
    return json_response(
        StatusOut(
            code_version=__version__,
            view_version=snap.version,
            model_version=snap.ranker.version if snap.ranker else None,
            as_of_ms=snap.view.as_of_ms,
            ab=ab,
            speed=SpeedHealthOut(h.ok, h.problem, h.beat_age_ms, h.job_age_ms, h.lag, h.replaying),
            drift=drift,
            degraded=snap.version is None or report is None,
            ui_events=ctx.settings.serving.ui_key is not None,
        )
    )
