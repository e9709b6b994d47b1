"""What makes the API safe to expose: API keys with scopes, and a request body limit that holds
for chunked bodies too (counted as they arrive, not trusted from Content-Length)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from lambdastack.settings import ApiKeySettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]


class KeyStore:
    """The configured keys; lookups compare in constant time."""

    def __init__(self, keys: tuple[ApiKeySettings, ...]):
        self._keys = [
            (k.key.get_secret_value().encode(), Principal(k.name, frozenset(k.scopes))) for k in keys
        ]

    def find(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        raw = presented.encode()
        found = None
        for secret, principal in self._keys:
            if hmac.compare_digest(secret, raw):
                found = principal
        return found


def require_scope(store: Callable[[Request], KeyStore], scope: str) -> Callable[..., Principal]:
    """A FastAPI dependency: 401 without a known key (of the KeyStore `store` gives for the
    request), 403 when the key lacks `scope`."""
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description=f"needs scope {scope}")

    def check(request: Request, key: str | None = Security(header)) -> Principal:
        principal = store(request).find(key)
        if principal is None:
            raise HTTPException(
                401,
                f"a valid API key is required in the {API_KEY_HEADER} header",
                {"WWW-Authenticate": "ApiKey"},
            )
        if scope not in principal.scopes:
            raise HTTPException(403, f"the API key {principal.name!r} lacks the scope {scope}")
        return principal

    return check


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes")


async def _send_413(send: Send, limit: int) -> None:
    import json

    body = json.dumps({"detail": BodyTooLarge(limit).detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: 413 once a request's body passes `limit` bytes, however it is framed."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _send_413(send, self.limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _send_413(send, self.limit)
