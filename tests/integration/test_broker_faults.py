"""Broker faults never hang a client (#13): a broker of this module's own, SIGSTOPped and then
SIGKILLed. `POST /v1/events` answers 503 within `serving.ingest_timeout_ms` and 202 again once the
broker is back; `produce` exits non-zero within `kafka.delivery_timeout_ms`, naming how many events
failed."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from lambdastack.settings import Settings, load_settings
from tests.conftest import Isolated
from tests.integration.conftest import start_api
from tests.integration.helpers import eventually, run_cli
from tests.integration.test_spark_cluster import _free_ports
from tools.stack import kafka

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
KEY = "broker-faults-key-0123456789abcdef"
TIMEOUT_MS = 2000


@pytest.fixture(scope="module")
def broker(base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isolated]:
    tmp = tmp_path_factory.mktemp("broker-faults")
    port, controller, api_port = _free_ports(3)
    env = dict(
        base_env,
        LAMBDASTACK_STACK__STATE_DIR=str(tmp / "state"),
        LAMBDASTACK_KAFKA__PORT=str(port),
        LAMBDASTACK_KAFKA__CONTROLLER_PORT=str(controller),
        LAMBDASTACK_KAFKA__DELIVERY_TIMEOUT_MS="4000",
        LAMBDASTACK_SERVING__PORT=str(api_port),
        LAMBDASTACK_SERVING__INGEST_TIMEOUT_MS=str(TIMEOUT_MS),
        LAMBDASTACK_SERVING__API_KEYS=f"[{{name: test, key: {KEY}, scopes: ['events:write']}}]",
        LAMBDASTACK_DATA__VIEWS_DIR=str(tmp / "views"),
    )
    s = load_settings(environ=env)
    kafka.start(s)
    try:
        yield Isolated(s, env, uuid.uuid4().hex[:10])
    finally:
        kafka.process(s).stop(timeout_s=20)


def _event(n: int) -> dict[str, object]:
    return {
        "event_id": f"bf-{uuid.uuid4().hex}-{n}",
        "user_id": f"u{n % 5}",
        "item_id": f"i{n % 7}",
        "type": "view",
        "event_time": int(time.time() * 1000),
    }


def _post(s: Settings, n: int = 20) -> tuple[int, float, str]:
    url = f"http://{s.serving.host}:{s.serving.port}/v1/events"
    started = time.monotonic()
    r = httpx.post(
        url, json={"events": [_event(i) for i in range(n)]}, headers={"X-API-Key": KEY}, timeout=30
    )
    return r.status_code, time.monotonic() - started, r.text


def _signal_broker(s: Settings, sig: int) -> int:
    pid = kafka.process(s).pid()
    assert pid is not None
    os.kill(pid, sig)
    return pid


def test_a_stopped_then_killed_broker_gets_503_within_the_ingest_timeout_and_produce_fails_fast(
    broker: Isolated, tmp_path
):
    s = broker.settings
    api = start_api(broker)
    try:
        eventually(lambda: _post(s)[0] == 202, 30, "events accepted while the broker runs")
        _signal_broker(s, signal.SIGSTOP)
        try:
            for _ in range(3):  # the first opens nothing new; later ones meet a producer that waits
                status, took, body = _post(s)
                assert status == 503 and took <= TIMEOUT_MS / 1000 + 1.0, (status, took, body)
                assert "could not be written to Kafka" in json.loads(body)["detail"]
            lines = tmp_path / "events.jsonl"
            lines.write_text("\n".join(json.dumps(_event(n)) for n in range(30)) + "\n")
            started = time.monotonic()
            done = run_cli(["produce", "--file", str(lines)], broker.env, timeout_s=60)
            took = time.monotonic() - started
            assert done.returncode != 0 and took < 30, (done.returncode, took, done.stdout, done.stderr)
            named = "30 of 30 records were not delivered to Kafka" in done.stderr
            assert named or "cannot reach Kafka" in done.stderr, done.stderr
            print(f"produce against a stopped broker: exit {done.returncode} after {took:.1f} s")
        finally:
            _signal_broker(s, signal.SIGCONT)
        eventually(lambda: _post(s)[0] == 202, 30, "events accepted again after SIGCONT")

        _signal_broker(s, signal.SIGKILL)
        eventually(lambda: not kafka.process(s).running(), 10, "the broker gone")
        status, took, _ = _post(s)
        assert status == 503 and took <= TIMEOUT_MS / 1000 + 1.0, (status, took)
        kafka.start(s)  # the same storage: the topics are still there
        eventually(lambda: _post(s)[0] == 202, 60, "events accepted again after the restart")
        assert api.running()
    finally:
        api.stop(timeout_s=20)
