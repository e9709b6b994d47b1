"""What the route modules share: the app's `Context` and how a handler reaches it, the JSON
response, the bounded path and query parameters, the documented error responses.

Handlers are module functions; each takes `request: Request` and reads `context(request)` (the
Context create_app puts in `app.state`). A FastAPI dependency would read better in a signature
but costs ≈15–30 µs of CPU per request (an async one, measured on a bare app; a sync one runs
in the thread pool and costs ≈150 µs), the Request parameter nothing measurable.

Each handler builds its response body (serving.schemas, dataclasses) and returns
`json_response(body)`: orjson writes it, so FastAPI neither validates nor serialises it again
(≈100 µs less CPU per feed of 20 items than returning it to FastAPI's `response_model`, which here
only declares the body for OpenAPI); the tests validate every endpoint's body against its model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import pydantic
from fastapi import Path, Request, Response
from pydantic import Field, StringConstraints, TypeAdapter

from lambdastack.errors import ValidationError
from lambdastack.settings import Settings
from serving import schemas
from serving.feed import FeedConfig
from serving.ingest import EventSink
from serving.metrics import Metrics
from serving.schemas import ID_PATTERN
from serving.security import KeyStore
from serving.state import ServingState

UserId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
ItemId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
K_DESCRIPTION = "at most serving.feed_k_max"
# what FastAPI would check for `UserId` and a `k: Query(ge=1)`, for the one handler that reads its
# parameters itself (serving.routes.feeds): pydantic's own validators, so the same messages
_ID_VALUE: TypeAdapter[str] = TypeAdapter(
    Annotated[str, StringConstraints(max_length=128, pattern=ID_PATTERN)]
)
_K_VALUE: TypeAdapter[int] = TypeAdapter(Annotated[int, Field(ge=1)])
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


def context(request: Request) -> Context:
    """The app's Context (set by serving.app.create_app)."""
    ctx: Context = request.app.state.context
    return ctx


def now_ms() -> int:
    return int(time.time() * 1000)


def json_response(body: Any, status: int = 200) -> Response:
    """`body` (a response dataclass, or plain JSON data) as the JSON response."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, media_type="application/json"
    )


def feed_parameters(request: Request, default_k: int, limit: int) -> tuple[str, int]:
    """The feed's `user_id` (path) and `k` (query, `default_k` when absent, at most `limit`),
    validated as FastAPI would validate `UserId` and `Query(ge=1)` (same locations and messages,
    every bad field at once), without its per-request dependency machinery: ≈50 µs of CPU per
    feed. ValidationError (422) names each bad field."""
    errors: list[tuple[str, str]] = []
    user_id = _valid(_ID_VALUE, request.path_params["user_id"], "path.user_id", errors)
    raw_k = request.query_params.get("k")
    k = default_k if raw_k is None else _valid(_K_VALUE, raw_k, "query.k", errors)
    if errors:
        raise ValidationError(errors)
    return user_id, bounded_k(k, limit)


def feed_parameters_openapi() -> list[dict[str, Any]]:
    """The OpenAPI parameters of `feed_parameters`: what FastAPI writes for `UserId` and an
    optional `k: Query(ge=1)` (serving.app states k's maximum from the configuration)."""
    k_schema = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}], "title": "K"}
    return [
        {
            "name": "user_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "maxLength": 128, "pattern": ID_PATTERN, "title": "User Id"},
        },
        {
            "name": "k",
            "in": "query",
            "required": False,
            "schema": {**k_schema, "description": K_DESCRIPTION},
            "description": K_DESCRIPTION,
        },
    ]


def _valid(adapter: TypeAdapter[Any], value: str, location: str, errors: list[tuple[str, str]]) -> Any:
    try:
        return adapter.validate_python(value)
    except pydantic.ValidationError as e:
        errors.append((location, e.errors()[0]["msg"]))
        return None


def bounded_k(k: int, limit: int) -> int:
    """`k` itself; ValidationError (422 naming query.k) when it exceeds the configured `limit`.
    Checked here, not by Query(le=...), because the limit is configuration a module-level route
    cannot see."""
    if k > limit:
        raise ValidationError([("query.k", f"must be at most {limit} (serving.feed_k_max)")])
    return k
