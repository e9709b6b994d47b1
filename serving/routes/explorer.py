"""The explorer page at /ui: plain ES modules and a style sheet from serving/ui (no build step, no
CDN: it works offline), and /ui/config.json, what the page needs from the settings (the key it
posts events with, `serving.ui_key`; the feed's k). The page reads the API's own endpoints."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from serving.routes.context import context, json_response

router = APIRouter(tags=["ui"], include_in_schema=False)
POLL_MS = 1000  # the page reads the feed at most once a second (no stream to follow yet)
ACTIONS = ("view", "like", "skip")  # the buttons on each feed item: event types it posts
MEDIA = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# the page loads nothing from elsewhere; scripts are the page's own modules, never inline
POLICY = (
    "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@cache
def _assets() -> dict[str, bytes]:
    """The files of serving/ui by name, read once (a request names one of these or gets a 404;
    nothing it names is ever looked up on disk)."""
    folder = resources.files("serving") / "ui"
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file() and f.name.endswith(tuple(MEDIA))}


def _serve(name: str) -> Response:
    body = _assets().get(name)
    if body is None:
        raise HTTPException(404, f"the explorer has no file {name!r}")
    media = MEDIA[name[name.rindex(".") :]]
    headers = {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": POLICY,
        "X-Content-Type-Options": "nosniff",
    }
    return Response(body, media_type=f"{media}; charset=utf-8", headers=headers)


@router.get("/ui")
async def ui_root(request: Request) -> Response:
    """/ui -> /ui/ (its query kept: /ui?user=ID opens that user's feed)."""
    query = request.url.query
    return RedirectResponse("/ui/" + (f"?{query}" if query else ""), status_code=307)


@router.get("/ui/")
async def ui_page() -> Response:
    return _serve("index.html")


@router.get("/ui/config.json")
async def ui_config(request: Request) -> Response:
    """What the page takes from the settings: the key it posts events with (null: it posts
    none), the feed's k, how often it reads the feed, and the event types of its buttons."""
    s = context(request).settings.serving
    key = next((k.key.get_secret_value() for k in s.api_keys if k.name == s.ui_key), None)
    return json_response({"events_key": key, "k": s.feed_k_default, "poll_ms": POLL_MS, "actions": ACTIONS})


@router.get("/ui/{name}")
async def ui_file(name: str) -> Response:
    return _serve(name)
