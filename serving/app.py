"""The FastAPI application: built by `create_app(settings)`, connected in its lifespan."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lambdastack import __version__
from lambdastack.errors import (
    DataError,
    LambdastackError,
    NoVersionError,
    ServiceError,
    ValidationError,
)
from lambdastack.settings import ServingSettings, Settings
from lambdastack.versions import VersionLayout
from serving.feed import FeedConfig
from serving.ingest import EventSink
from serving.logs import AccessLog, RequestContext, configure_logging, request_id
from serving.metrics import Metrics
from serving.routes import include_routes
from serving.routes.context import Context
from serving.security import BodyLimit, KeyStore
from serving.served_version import ServedVersion
from serving.speed_view import SpeedView
from serving.state import ServingState

log = logging.getLogger("lambdastack.serving")
_STATUS: dict[type[LambdastackError], int] = {
    ValidationError: 422,
    DataError: 422,
    NoVersionError: 503,
    ServiceError: 503,
}


def _install_error_handlers(app: FastAPI) -> None:
    """Error bodies are {"detail", "request_id"}: sentences, never stack traces or paths."""

    def body(request: Request, detail: Any) -> dict[str, Any]:
        return {"detail": detail, "request_id": request_id(request.scope) or None}

    @app.exception_handler(LambdastackError)
    async def _ours(request: Request, exc: LambdastackError) -> JSONResponse:
        status = next((code for t, code in _STATUS.items() if isinstance(exc, t)), 500)
        detail: Any = str(exc)
        if isinstance(exc, ValidationError):
            detail = [{"loc": f, "msg": reason} for f, reason in exc.errors]
        return JSONResponse(body(request, detail), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse(body(request, detail), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(body(request, exc.detail), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error", exc_info=exc, extra={"fields": {"request_id": request_id(request.scope)}}
        )
        return JSONResponse(body(request, "internal error; the server log has the details"), status_code=500)


def create_app(settings: Settings) -> FastAPI:
    """The app: its context built here, connected in its lifespan, errors and middleware installed."""
    configure_logging()
    metrics = Metrics()
    ctx = _context(settings, metrics)
    access_log = AccessLog() if settings.serving.access_log else None
    app = FastAPI(
        title="lambdastack",
        version=__version__,
        lifespan=_lifespan(ctx, access_log),
        description="Personalized feeds merged from a batch view and a speed view.",
    )
    app.state.context = ctx
    _install_error_handlers(app)
    include_routes(app)
    _install_middleware(app, settings, metrics, access_log)
    _document_limits(app, settings.serving)
    return app


def _document_limits(app: FastAPI, serving: ServingSettings) -> None:
    """The OpenAPI document states the configured limits the handlers check (the routes are
    module-level, so their declarations cannot): `k` at most feed_k_max, at most
    predict_instances_max instances."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()  # kept by FastAPI as app.openapi_schema: completed once, here
        for operation in (op for path in spec["paths"].values() for op in path.values()):
            for param in operation.get("parameters", []):
                if param["name"] == "k" and param["in"] == "query":
                    schema = param["schema"]
                    for branch in schema.get("anyOf", [schema]):
                        if branch.get("type") == "integer":
                            branch["maximum"] = serving.feed_k_max
        instances = spec["components"]["schemas"]["PredictIn"]["properties"]["instances"]
        instances["maxItems"] = serving.predict_instances_max
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _context(settings: Settings, metrics: Metrics) -> Context:
    """What the handlers share; nothing here connects (the lifespan does)."""

    def swapped(snap: ServedVersion) -> None:
        metrics.loaded(
            snap.version,
            snap.ranker.version if snap.ranker else None,
            snap.challenger.version if snap.challenger else None,
            snap.view.as_of_ms if snap.version is not None else None,
        )

    layout = VersionLayout(settings.path(settings.data.views_dir))
    state = ServingState(
        settings, layout, SpeedView(settings), on_swap=swapped, on_checked=metrics.load_state
    )
    return Context(
        settings,
        state,
        metrics,
        EventSink(settings),
        KeyStore(settings.serving.api_keys),
        FeedConfig.from_settings(settings.serving),
    )


def _lifespan(
    ctx: Context, access_log: AccessLog | None
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Open the speed view, load the current version, follow CURRENT; close it all on shutdown."""
    state = ctx.state

    async def flush_access_log() -> None:
        while access_log is not None:
            await asyncio.sleep(0.5)
            access_log.flush()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.speed.open()
        try:  # a failed load is logged by lambdastack.follower and returns False
            await asyncio.to_thread(state.load_current)
        except Exception:  # noqa: BLE001 - serve from the speed view until a version loads
            log.exception("loading the current batch version failed; serving without one")
        tasks = [asyncio.create_task(state.follow()), asyncio.create_task(flush_access_log())]
        yield
        for task in tasks:
            task.cancel()
        if access_log is not None:
            access_log.flush()
        await state.speed.close()
        await asyncio.to_thread(ctx.sink.close)

    return lifespan


def _install_middleware(
    app: FastAPI, settings: Settings, metrics: Metrics, access_log: AccessLog | None
) -> None:
    """CORS when origins are configured, then the body limit, then the request context (outermost)."""
    if settings.serving.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.serving.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "X-Request-ID", "Content-Type"],
        )
    app.add_middleware(BodyLimit, limit=settings.serving.max_body_bytes)
    app.add_middleware(RequestContext, metrics=metrics, access_log=access_log)
