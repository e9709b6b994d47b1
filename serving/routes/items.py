"""GET /v1/items/{item_id}: an item's batch attributes and live counters."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from lambdastack.keys import ALL_TYPES
from serving.logs import request_id
from serving.routes.context import ERRORS, ItemId, context, json_response, now_ms
from serving.schemas import Error, ItemOut

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["items"])


@router.get(
    "/items/{item_id}",
    response_model=ItemOut,
    responses={404: {"model": Error, "description": "no view knows the item"}},
)
async def item(request: Request, item_id: ItemId) -> Response:
    """Batch attributes and live counters of an item (since the as-of, and 1m / 10m / 1h)."""
    ctx = context(request)
    view = ctx.state.served.view
    live = await ctx.state.speed.item(item_id, view.as_of_ms, now_ms())
    since, windows = live if live is not None else ({ALL_TYPES: 0}, {})
    known = item_id in view.index or item_id in view.titles or since[ALL_TYPES] > 0
    if not known and not any(w.get(ALL_TYPES, 0) for w in windows.values()):
        detail = f"item {item_id} is in neither the batch nor the speed view"
        return json_response(Error(detail, request_id(request.scope) or None), 404)
    if live is None:
        ctx.metrics.degraded.labels("/v1/items/{item_id}").inc()
    batch_count = view.count(item_id)
    return json_response(
        ItemOut(
            item_id=item_id,
            title=view.titles.get(item_id),
            genres=list(view.side.genres.get(item_id, ())),
            count=batch_count + since[ALL_TYPES],
            batch_count=batch_count,
            speed_count=since[ALL_TYPES],
            speed_by_type={t: n for t, n in since.items() if t != ALL_TYPES},
            windows=windows,
            view_version=view.version,
            degraded=live is None,
        )
    )
