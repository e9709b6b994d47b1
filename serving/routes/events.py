"""POST /v1/events: validated interaction events to Kafka (needs a key with events:write)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from lambdastack.errors import ValidationError
from lambdastack.events import Event, validate
from serving.routes.context import BODY_ERRORS, ERRORS, context, json_response, now_ms
from serving.schemas import Error, EventsIn, EventsOut
from serving.security import KeyStore, Principal, require_scope

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["events"])


def _keys(request: Request) -> KeyStore:
    return context(request).keys


write_events = require_scope(_keys, "events:write")


@router.post(
    "/events",
    status_code=202,
    response_model=EventsOut,
    responses={
        401: {"model": Error},
        403: {"model": Error},
        503: {"model": Error, "description": "Kafka did not take the events"},
        **BODY_ERRORS,
    },
)
async def events(
    request: Request, body: EventsIn, _who: Annotated[Principal, Depends(write_events)]
) -> Response:
    """Validate interaction events and write them to Kafka (needs an API key with events:write)."""
    ctx = context(request)
    t = now_ms()
    good: list[Event] = []
    errors: list[tuple[str, str]] = []
    for n, raw in enumerate(body.events):
        event, errs = validate(raw, now_ms=t)
        errors += [(f"events[{n}].{f}", reason) for f, reason in errs]
        if event is not None:
            good.append(event)
    if errors:
        raise ValidationError(errors)
    await ctx.sink.send_all(good)
    return json_response(EventsOut(len(good), [e.event_id for e in good], ctx.sink.topic), 202)
