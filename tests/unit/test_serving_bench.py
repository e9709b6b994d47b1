"""Parsing wrk's report and writing its request script (the benchmark's pure parts)."""

from __future__ import annotations

import pytest

from lambdastack.errors import ServiceError
from tools.bench.api_stack import lua_script
from tools.bench.serving import parse_wrk

pytestmark = pytest.mark.unit
REPORT = """Running 5s test @ http://127.0.0.1:8000/ping
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  300.00us   9.00ms   90.00%
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    1.50ms
     99%    2.51ms
  40000 requests in 5.00s, 6.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   8000.12
Transfer/sec:      1.20MB
"""


def test_wrk_latency_units_and_errors_are_read():
    got = parse_wrk(REPORT)
    assert got == {
        "rps": 8000.12,
        "p50_ms": 0.812,
        "p99_ms": 2.51,
        "non_2xx": 4.0,
        "socket_errors": 3.0,
        "requests": 40000.0,
    }
    with pytest.raises(ServiceError, match="no throughput"):
        parse_wrk("  Latency Distribution\n     50%  1.00ms\n     99%  2.00s\n")


def test_the_lua_script_cycles_through_every_path():
    script = lua_script(["/v1/users/a/feed", '/v1/users/"b"/feed'])
    assert 'local paths = {"/v1/users/a/feed","/v1/users/\\"b\\"/feed"}' in script
    assert "paths[(n % #paths) + 1]" in script
