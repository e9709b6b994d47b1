"""The API's routes, one module per resource: feeds, users, items, trending, predict, events,
operations and status, and the explorer page (/ui). Each holds a module-level APIRouter whose
handlers reach the app's state through `context.context(request)`."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from serving.routes import events, explorer, feeds, items, operations, predict, status, trending, users

# in the order routes are matched: operations, then the feed first of /v1, the page last
ROUTERS: tuple[APIRouter, ...] = tuple(
    m.router for m in (operations, feeds, users, items, trending, predict, events, status, explorer)
)


def include_routes(app: FastAPI) -> None:
    """Every route on the app's own router. Not `app.include_router`: FastAPI (0.165) resolves an
    included router's routes on each request, ≈25 µs of CPU (measured on /ping and the feed);
    the routes are complete as the routers built them (prefix, responses, tags)."""
    for router in ROUTERS:
        app.router.routes.extend(router.routes)
