"""The FastAPI application: built by `create_app(settings)`, connected in its lifespan."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse

from lambdastack import __version__
from lambdastack.errors import LambdastackError, NoVersionError, ValidationError
from lambdastack.keys import ALL_TYPES
from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout
from serving.merge import merge_feed
from serving.speed_view import SpeedView
from serving.state import ServingState

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
_STATUS = {ValidationError: 422, NoVersionError: 503}


def create_app(settings: Settings) -> FastAPI:
    state = ServingState(settings, VersionLayout(settings.path(settings.data.views_dir)), SpeedView(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.speed.open()
        await asyncio.to_thread(state.load_current)
        follower = asyncio.create_task(state.follow())
        yield
        follower.cancel()
        await state.speed.close()

    app = FastAPI(title="lambdastack", version=__version__, lifespan=lifespan)

    @app.exception_handler(LambdastackError)
    async def _lambdastack_error(request: Request, exc: LambdastackError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_STATUS.get(type(exc), 500))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        checks = {"batch_version": state.view.version is not None, "redis": await state.speed.ping()}
        return JSONResponse(
            {"ready": all(checks.values()), "checks": checks},
            status_code=200 if all(checks.values()) else 503,
        )

    @app.get("/version")
    async def version() -> dict[str, Any]:
        return {
            "code_version": __version__,
            "view_version": state.view.version,
            "as_of_ms": state.view.as_of_ms,
        }

    @app.get("/v1/users/{user_id}/feed")
    async def feed(
        user_id: Annotated[str, Path(pattern=ID_PATTERN)],
        k: Annotated[int | None, Query(ge=1, le=settings.serving.feed_k_max)] = None,
    ) -> dict[str, Any]:
        view = state.view  # one version for the whole request
        k = k or settings.serving.feed_k_default
        seen = view.seen(user_id)
        pool = view.popular(k + len(seen))
        degraded = False
        try:
            speed = await state.speed.counts(view.as_of_ms, int(time.time() * 1000), pool, fresh_n=k * 2)
            speed_counts = speed.counts
        except (redis.RedisError, OSError):
            degraded, speed_counts = True, {}
        batch_counts = {i: view.count(i) for i in set(pool) | set(speed_counts)}
        items = merge_feed(pool, batch_counts, speed_counts, seen, k)
        return {
            "user_id": user_id,
            "items": [
                {
                    "item_id": f.item_id,
                    "title": view.titles.get(f.item_id),
                    "score": f.score,
                    "count": f.batch_count + f.speed_count,
                    "batch_count": f.batch_count,
                    "speed_count": f.speed_count,
                    "sources": list(f.sources),
                }
                for f in items
            ],
            "view_version": view.version,
            "as_of_ms": view.as_of_ms,
            "degraded": degraded,
        }

    @app.get("/v1/items/{item_id}")
    async def item(item_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> dict[str, Any]:
        view = state.view
        degraded = False
        try:
            speed = await state.speed.item_counts(item_id, view.as_of_ms)
        except (redis.RedisError, OSError):
            degraded, speed = True, {}
        batch_count = view.count(item_id)
        speed_count = speed.get(ALL_TYPES, 0)
        return {
            "item_id": item_id,
            "title": view.titles.get(item_id),
            "count": batch_count + speed_count,
            "batch_count": batch_count,
            "speed_count": speed_count,
            "speed_by_type": {t: n for t, n in speed.items() if t != ALL_TYPES},
            "view_version": view.version,
            "degraded": degraded,
        }

    return app
