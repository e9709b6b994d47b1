"""The API's HTTP protocol refuses headers that arrive too slowly (408) or grow too large (431),
and serves a well-behaved client as uvicorn's own httptools protocol does."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from serving.connections import CoalescedWrites, GuardedHttpToolsProtocol

pytestmark = pytest.mark.unit
TIMEOUT_S = 0.2
REQUEST = b"GET /health HTTP/1.1\r\nHost: api\r\nUser-Agent: test\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class FakeTransport(asyncio.Transport):
    """A socket's transport that keeps what the server writes and whether it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.writes = 0  # write calls: each is one send on a socket
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)
        self.writes += 1

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...


def on_a_loop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """The test run on a fresh event loop (the protocol's timers need one)."""
    return functools.wraps(test)(lambda: asyncio.run(test()))


def connect(max_header_bytes: int = 1024) -> tuple[GuardedHttpToolsProtocol, FakeTransport]:
    config = Config(app, http="httptools", log_level="warning", timeout_keep_alive=5)
    protocol = GuardedHttpToolsProtocol(
        config=config,
        server_state=ServerState(),
        app_state={},
        header_timeout_s=TIMEOUT_S,
        max_header_bytes=max_header_bytes,
    )
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


@on_a_loop
async def test_a_header_sent_a_byte_at_a_time_gets_408_and_the_connection_closes():
    protocol, transport = connect()
    for byte in REQUEST[:20]:
        protocol.data_received(bytes([byte]))
        await asyncio.sleep(TIMEOUT_S / 10)
    await asyncio.sleep(TIMEOUT_S * 0.8)
    assert transport.closed and transport.written.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert transport.written.endswith(b"the request header did not arrive within 0.2 s")


@on_a_loop
async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout():
    _protocol, transport = connect()
    await asyncio.sleep(TIMEOUT_S / 2)
    assert not transport.closed
    await asyncio.sleep(TIMEOUT_S)
    assert transport.closed and b" 408 " in transport.written


@on_a_loop
async def test_a_header_in_time_is_served_and_the_deadline_never_fires():
    protocol, transport = connect()
    protocol.data_received(REQUEST)
    await asyncio.sleep(TIMEOUT_S * 2)
    assert transport.written.startswith(b"HTTP/1.1 200 OK") and transport.written.endswith(b"ok")
    assert not transport.closed  # kept alive, not refused


@on_a_loop
async def test_a_later_request_on_a_keep_alive_connection_has_its_own_deadline():
    protocol, transport = connect()
    protocol.data_received(REQUEST)
    await asyncio.sleep(TIMEOUT_S * 1.5)  # longer than the header timeout, shorter than keep-alive
    protocol.data_received(REQUEST[:10])
    await asyncio.sleep(TIMEOUT_S / 2)
    assert not transport.closed
    await asyncio.sleep(TIMEOUT_S)
    assert transport.closed and transport.written.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 408 " in transport.written


@on_a_loop
async def test_a_header_over_the_limit_gets_431():
    protocol, transport = connect(max_header_bytes=1024)
    protocol.data_received(b"GET /health HTTP/1.1\r\nHost: api\r\n")
    for _ in range(40):
        protocol.data_received(b"X-Padding: " + b"p" * 40 + b"\r\n")
        if transport.closed:
            break
    assert transport.closed and transport.written.startswith(b"HTTP/1.1 431 ")
    assert transport.written.endswith(b"the request header is larger than 1024 bytes")


@on_a_loop
async def test_a_responses_header_and_body_go_out_as_one_write():
    protocol, transport = connect()
    protocol.data_received(REQUEST)
    await asyncio.sleep(TIMEOUT_S / 4)
    assert transport.written.startswith(b"HTTP/1.1 200 OK") and transport.written.endswith(b"ok")
    assert transport.writes == 1  # uvicorn wrote the header and the body separately


@on_a_loop
async def test_coalesced_writes_are_sent_at_the_end_of_the_step_and_before_a_close():
    transport = FakeTransport()
    writes = CoalescedWrites(transport, asyncio.get_running_loop())
    writes.write(b"a")
    writes.write(b"b")
    assert transport.written == b"" and writes.get_extra_info("peername") == ("127.0.0.1", 40000)
    await asyncio.sleep(0)
    assert (transport.written, transport.writes) == (b"ab", 1)
    writes.write(b"c")
    writes.close()  # what is pending goes first
    assert transport.written == b"abc" and transport.closed
    writes.write(b"late")
    await asyncio.sleep(0)
    assert transport.written == b"abc"  # nothing is written to a closed transport
