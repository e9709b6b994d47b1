"""GET /v1/trending: the newest complete trending window of the speed layer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from serving.routes.context import ERRORS, bounded_k, context, json_response
from serving.schemas import TrendingItemOut, TrendingOut

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["items"])


@router.get("/trending", response_model=TrendingOut)
async def trending(
    request: Request, k: Annotated[int, Query(ge=1, description="at most serving.feed_k_max")] = 20
) -> Response:
    """The newest complete trending window of the speed layer."""
    ctx = context(request)
    k = bounded_k(k, ctx.settings.serving.feed_k_max)
    view = ctx.state.served.view
    got = await ctx.state.speed.trending(k)
    end, items = got if got is not None else (None, [])
    if got is None:
        ctx.metrics.degraded.labels("/v1/trending").inc()
    return json_response(
        TrendingOut(
            window_end_ms=end,
            items=[TrendingItemOut(i, view.titles.get(i), score) for i, score in items],
            degraded=got is None,
        )
    )
