"""Broker faults never hang a client (#13): a broker of this module's own, SIGSTOPped and then
SIGKILLed. `POST /v1/events` answers 503 within `serving.ingest_timeout_ms` and 202 again once the
broker is back; `produce` exits non-zero within `kafka.delivery_timeout_ms`, naming how many events
failed."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from lambdastack.settings import Settings, load_settings
from tests.conftest import Isolated, make_isolated
from tests.integration.conftest import start_api
from tests.integration.helpers import eventually, free_ports, run_cli
from tools.stack import kafka

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
KEY = "broker-faults-key-0123456789abcdef"
TIMEOUT_MS = 2000


@pytest.fixture(scope="module")
def broker(services, base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isolated]:
    tmp = tmp_path_factory.mktemp("broker-faults")
    port, controller, api_port = free_ports(3)
    env = dict(
        base_env,
        LAMBDASTACK_STACK__STATE_DIR=str(tmp / "state"),
        LAMBDASTACK_KAFKA__PORT=str(port),
        LAMBDASTACK_KAFKA__CONTROLLER_PORT=str(controller),
        LAMBDASTACK_KAFKA__DELIVERY_TIMEOUT_MS="4000",
        LAMBDASTACK_SERVING__PORT=str(api_port),
        LAMBDASTACK_SERVING__INGEST_TIMEOUT_MS=str(TIMEOUT_MS),
        LAMBDASTACK_SERVING__API_KEYS=f"[{{name: test, key: {KEY}, scopes: ['events:write']}}]",
        LAMBDASTACK_SERVING__UI_KEY="test",
        LAMBDASTACK_DATA__VIEWS_DIR=str(tmp / "views"),
        LAMBDASTACK_DATA__MASTER_DIR=str(tmp / "master"),
        LAMBDASTACK_DATA__CATALOGUE_DIR=str(tmp / "catalogue"),
        LAMBDASTACK_REDIS__KEY_PREFIX=f"bf{uuid.uuid4().hex[:8]}",
        LAMBDASTACK_BATCH__BUCKET_S="60",
        LAMBDASTACK_SPEED__METRICS_PORT="0",
        LAMBDASTACK_SPEED__SAVEPOINT_ON_STOP="false",
        LAMBDASTACK_SPEED__ARCHIVE_ROLL_S="1",
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
        "event_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _post(s: Settings, n: int = 20, events: list[dict[str, object]] | None = None) -> tuple[int, float, str]:
    url = f"http://{s.serving.host}:{s.serving.port}/v1/events"
    started = time.monotonic()
    body = {"events": events if events is not None else [_event(i) for i in range(n)]}
    r = httpx.post(url, json=body, headers={"X-API-Key": KEY}, timeout=30)
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


class RetryingClient(threading.Thread):
    """POSTs batches of fresh events, and a batch answered anything but 202 again (same event
    ids) until it is taken, as a client should; keeps every event Kafka acknowledged."""

    def __init__(self, s: Settings, batch: int = 10):
        super().__init__(daemon=True)
        self.url = f"http://{s.serving.host}:{s.serving.port}/v1/events"
        self.batch, self.acked, self.answers = batch, [], []  # type: ignore[var-annotated]
        self.done = threading.Event()

    def run(self) -> None:
        n = 0
        with httpx.Client(timeout=30) as client:
            while not self.done.is_set():
                events = [_event(n + i) for i in range(self.batch)]
                n += self.batch
                while True:  # the same batch until it is taken, even after `done`
                    started = time.monotonic()
                    try:
                        status = client.post(
                            self.url, json={"events": events}, headers={"X-API-Key": KEY}
                        ).status_code
                    except httpx.HTTPError:
                        status = 0
                    self.answers.append((status, time.monotonic() - started))
                    if status == 202:
                        self.acked += events
                        break
                    time.sleep(0.2)
                time.sleep(0.05)


def test_broker_faults_under_load_lose_nothing_acknowledged_and_count_nothing_twice(
    broker: Isolated, tmp_path
):
    from lambdastack.events import decode
    from lambdastack.master import read
    from tests.integration.conftest import start_speed_job
    from tests.integration.speedcheck import expected_counts, wait_exact

    iso = make_isolated(broker.env, tmp_path)  # topics of its own on the module's broker
    s = iso.settings
    job = start_speed_job(iso)
    api = start_api(iso)
    client = RetryingClient(s)
    try:
        first = [_event(-1)]  # counted like the others once taken
        eventually(lambda: _post(s, events=first)[0] == 202, 30, "events accepted")
        client.start()
        time.sleep(3)
        lines = tmp_path / "produced.jsonl"
        lines.write_text("\n".join(json.dumps(_event(10_000 + n)) for n in range(200)) + "\n")
        _signal_broker(s, signal.SIGSTOP)  # 30 s, with both kinds of client sending
        try:
            done = run_cli(["produce", "--file", str(lines)], iso.env, timeout_s=60)
            assert done.returncode != 0, done.stdout
            time.sleep(max(0.0, 30 - 8))
        finally:
            _signal_broker(s, signal.SIGCONT)
        eventually(
            lambda: run_cli(["produce", "--file", str(lines)], iso.env).returncode == 0,
            60,
            "produce taking the file again (idempotent by event_id)",
            1.0,
        )
        time.sleep(3)
        _signal_broker(s, signal.SIGKILL)
        eventually(lambda: not kafka.process(s).running(), 10, "the broker gone")
        time.sleep(3)
        kafka.start(s)
        time.sleep(5)
        client.done.set()
        client.join(120)
        assert not client.is_alive(), f"a batch never taken: {client.answers[-5:]}\n{api.log_tail(30)}"

        slow = [took for status, took in client.answers if status != 202 and took > TIMEOUT_MS / 1000 + 1.0]
        assert not slow, f"answers slower than the ingest timeout: {slow[:5]}"
        assert any(status == 503 for status, _ in client.answers), "the faults were seen"
        now = int(time.time() * 1000)
        produced = [decode(line.encode(), now_ms=now)[0] for line in lines.read_text().splitlines()]
        posted = [decode(json.dumps(e).encode(), now_ms=now)[0] for e in client.acked]
        posted += [decode(json.dumps(e).encode(), now_ms=now)[0] for e in first]
        events = [e for e in (*produced, *posted) if e is not None]
        assert len({e.event_id for e in events}) == len(events) == 200 + len(client.acked) + 1
        wait_exact(s, expected_counts(events, s.batch.bucket_s), 120, job)  # every event once
        master = s.path(s.data.master_dir)
        want = {e.event_id for e in events}
        eventually(lambda: want <= set(read(master)["event_id"].to_pylist()), 90, "every event archived", 1.0)
        archived = read(master)["event_id"].to_pylist()
        assert len(archived) == len(set(archived)) and set(archived) == want  # each once, nothing else
        assert job.running() and api.running(), job.log_tail(40)
        retried = sum(1 for status, _ in client.answers if status != 202)
        print(f"{len(client.acked)} posted events acknowledged, {retried} answers to retry; 200 produced")
    finally:
        client.done.set()
        api.stop(timeout_s=20)
        job.stop(timeout_s=20)
