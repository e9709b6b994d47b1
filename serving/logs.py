"""Structured JSON logs, and the ASGI middleware that gives each request an id, a log line and
its latency metric."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import IO, Any

import orjson

from serving.metrics import Metrics
from serving.security import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID_RE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"), default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for every lambdastack logger (idempotent)."""
    root = logging.getLogger("lambdastack")
    if any(getattr(h, "_lambdastack", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._lambdastack = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def request_id(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", ""))


class AccessLog:
    """One JSON line per request, in the JsonFormatter's shape, appended to a buffer that is
    written when it holds 64 KiB or is older than `flush_s` (checked on every line and by the
    app's lifespan timer) and at shutdown: a line costs microseconds, not a write system call."""

    FLUSH_BYTES = 65536

    def __init__(self, stream: IO[bytes] | None = None, flush_s: float = 0.5):
        self._stream = stream
        self._buf = bytearray()
        self._flush_s = flush_s
        self._oldest = 0.0

    def write(self, fields: dict[str, Any]) -> None:
        now = time.time()
        if not self._buf:
            self._oldest = now
        line = {"ts": round(now, 3), "level": "info", "logger": "lambdastack.access", "msg": "request"}
        self._buf += orjson.dumps(line | fields)
        self._buf += b"\n"
        if len(self._buf) >= self.FLUSH_BYTES or now - self._oldest >= self._flush_s:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        stream = self._stream or sys.stderr.buffer
        try:
            stream.write(self._buf)
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not fail requests
            pass
        self._buf.clear()


class RequestContext:
    """Outermost middleware: X-Request-ID in (kept if well-formed) and out, latency, access log."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: AccessLog | None):
        self.app, self.metrics, self.access_log = app, metrics, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope.get("headers") or ():
            if name == REQUEST_ID_HEADER:
                rid = value.decode() if _REQUEST_ID_RE.match(value) else ""
                break
        rid = rid or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "unmatched")
            m = self.metrics
            m.child(m.latency, route, scope["method"]).observe(elapsed)
            m.child(m.responses, route, str(status)).inc()
            if self.access_log is not None:
                self.access_log.write(
                    {
                        "request_id": rid,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1000, 3),
                    }
                )
