"""GET /v1/users/{user_id}/profile: the batch profile merged with the speed view's live state."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from lambdastack.speedview import FreshCandidates, Interaction
from serving.batch_view import BatchView
from serving.online_features import apply_since
from serving.routes.context import ERRORS, UserId, context, json_response
from serving.schemas import FreshOut, InteractionOut, MergedOut, ProfileOut, UsersOut

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["users"])
SAMPLE_MAX = 100  # users per GET /v1/users/sample
BATCH_FIELDS = (
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


def _batch(view: BatchView, user_id: str) -> dict[str, Any] | None:
    """The batch profile's fields of interest, or None for a user the batch has not seen."""
    row = view.profiles.get(user_id)
    if row is None:
        return None
    batch = {key: row[key] for key in BATCH_FIELDS if key in row}
    batch["history_items"] = len(view.seen(user_id))
    return batch


def _fresh(fresh: FreshCandidates | None) -> FreshOut | None:
    if fresh is None:
        return None
    items = [(i, s) for i, s in fresh.items]
    return FreshOut(fresh.view_version, fresh.model_version, fresh.event_time_ms, items)


def _merged(view: BatchView, user_id: str, recent: Sequence[Interaction]) -> MergedOut:
    state = apply_since(view.side, view.user_state(user_id), view.as_of_ms, recent)
    return MergedOut(
        events=state.n,
        events_since_as_of=sum(1 for i in recent if i.event_time_ms >= view.as_of_ms),
        genres=dict(sorted(state.genres.items(), key=lambda g: (-g[1], g[0]))),
        last_item=state.last_item,
        last_t=state.last_t,
        cluster=view.cluster_of(user_id, state),
    )


@router.get("/users/{user_id}/profile", response_model=ProfileOut)
async def profile(request: Request, user_id: UserId) -> Response:
    """The batch profile merged with the live state from the speed view."""
    ctx = context(request)
    view = ctx.state.served.view
    live = await ctx.state.speed.user(user_id)
    recent, fresh = live if live is not None else ((), None)
    if live is None:
        ctx.metrics.degraded.labels("/v1/users/{user_id}/profile").inc()
    batch = _batch(view, user_id)
    return json_response(
        ProfileOut(
            user_id=user_id,
            view_version=view.version,
            known_to_batch=batch is not None,
            batch=batch,
            recent=[InteractionOut(i.item_id, i.type, i.value, i.event_time_ms) for i in recent],
            fresh=_fresh(fresh),
            merged=_merged(view, user_id, recent),
            degraded=live is None,
        )
    )


@router.get("/users/sample", response_model=UsersOut)
async def sample(
    request: Request, n: Annotated[int, Query(ge=1, le=SAMPLE_MAX, description="how many users")] = 1
) -> Response:
    """Users drawn at random (without repeats) from those the served batch version knows: how
    the explorer page picks a random user."""
    view = context(request).state.served.view
    ids = view.user_ids
    picked = random.sample(ids, min(n, len(ids)))  # noqa: S311 - a pick for a person, not a secret
    return json_response(UsersOut(picked, len(ids), view.version))
