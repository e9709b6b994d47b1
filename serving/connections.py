"""The API's HTTP protocol: uvicorn's httptools protocol with a deadline and a size limit on each
request's header, so that slow or endless headers cannot hold a connection.

uvicorn (0.54) has no header read timeout: its keep-alive timer is armed only after a response,
and every byte received disarms it, so a client that opens a connection and sends its header a
byte at a time (slow loris) holds the connection, and a slot of `limit_concurrency`, for as long
as it likes; httptools has no limit on a header's size either. Here:

- the header deadline starts when the connection opens (its first request) or when the first
  byte of a later request arrives on a keep-alive connection (the idle time between requests is
  `timeout_keep_alive`'s); when it passes before the header is complete, the client gets 408
  and the connection is closed;
- the bytes received before a header is complete are counted; past `max_header_bytes` the
  client gets 431 and the connection is closed.

The body is not covered: a request whose header arrived runs in the app, which bounds the body's
size (`serving.max_body_bytes`), not its pace.

Writes are coalesced (`CoalescedWrites`): uvicorn writes a response's header and its body as two
`transport.write` calls, so two `send` system calls on an idle socket; here whatever one step of
the event loop writes goes out as one send at the end of that step. In a profile of the feed under
load the header's send alone was a fifth of the API's samples (on loopback a send also runs the
receiver's side of TCP).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class CoalescedWrites:
    """A transport whose writes within one event-loop step are sent together, at the end of the
    step (loop.call_soon); everything else is the wrapped transport's. Closing sends what is
    pending first; aborting drops it, as the transport's abort drops its buffer."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with `header_timeout_s` and `max_header_bytes` per request header."""

    def __init__(self, *args: Any, header_timeout_s: float, max_header_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.max_header_bytes = max_header_bytes
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._chunk = 0  # the size of the data being parsed
        self._in_header = True  # no request yet: the connection's first header is awaited

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescedWrites(transport, self.loop))  # type: ignore[arg-type]
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._chunk = len(data)
        if self._in_header:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._in_header and self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._refuse(431, f"the request header is larger than {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_header:  # a later request on a keep-alive connection
            self._in_header = True
            self._header_bytes = self._chunk  # all of it, as the part before this request is not known
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._in_header = False
        self._disarm_header_deadline()
        super().on_headers_complete()

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._header_timed_out)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        if self._in_header and not self.transport.is_closing():
            self._refuse(408, f"the request header did not arrive within {self.header_timeout_s:g} s")

    def _refuse(self, status: int, reason: str) -> None:
        """Answer `status` with `reason` as plain text and close the connection."""
        self._disarm_header_deadline()
        body = reason.encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status])]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head.append(b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body))
        self.transport.write(b"".join([*head, b"connection: close\r\n\r\n", body]))
        self.transport.close()
