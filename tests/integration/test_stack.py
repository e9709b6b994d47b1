"""The native stack: Kafka and Redis start, report status, survive `up` twice, and `down`
cleans up after a crash."""

from __future__ import annotations

import os
import uuid

import pytest
import redis as redis_client

from lambdastack.settings import load_settings
from tools.stack import kafka, redis
from tools.stack.manager import MEMBER_ENV, down, status, up_infra
from tools.stack.process import port_open

pytestmark = pytest.mark.integration


def test_stack_is_up_and_status_says_where(services):
    rows = {r.name: r for r in status(services)}
    assert rows["kafka"].running and rows["kafka"].address == f"127.0.0.1:{services.kafka.port}"
    assert rows["redis"].running and rows["redis"].address == f"127.0.0.1:{services.redis.port}"
    assert kafka.ready(services) and redis.ready(services)


def test_up_twice_is_harmless(services):
    before = {r.name: r.pid for r in status(services)}
    up_infra(services, echo=lambda _m: None)
    assert {r.name: r.pid for r in status(services)} == before


def test_topics_exist_with_the_configured_partitions(services):
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=services.kafka.bootstrap)
    try:
        meta = {
            t["name"]: t for t in admin.describe_topics([services.topics.events, services.topics.signals])
        }
    finally:
        admin.close()
    assert len(meta[services.topics.events]["partitions"]) == services.kafka.partitions


def test_down_after_a_crash_cleans_up(base_env, tmp_path):
    """A second Redis-only stack: its pid file is lost (the manager crashed), then `down` finds the
    orphan by its environment marker, stops it and frees the port; a stale pid file is removed."""
    env = dict(
        base_env,
        LAMBDASTACK_STACK__STATE_DIR=str(tmp_path / "state"),
        LAMBDASTACK_REDIS__PORT="16390",
        LAMBDASTACK_KAFKA__PORT="19190",
        LAMBDASTACK_KAFKA__CONTROLLER_PORT="19191",
        LAMBDASTACK_SERVING__PORT="18090",
    )
    s = load_settings(environ=env)
    saved = os.environ.get(MEMBER_ENV)
    os.environ[MEMBER_ENV] = str(s.state_dir)
    try:
        pid = redis.start(s)
    finally:
        if saved is None:
            os.environ.pop(MEMBER_ENV)
        else:
            os.environ[MEMBER_ENV] = saved
    assert redis_client.Redis(port=16390).ping()
    redis.process(s).pid_file.unlink()  # the crash: the stack no longer knows its process
    down(s, echo=lambda _m: None)
    assert not port_open("127.0.0.1", 16390)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # a pid file left by a process that died
    stale = redis.process(s).pid_file
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text(f"{2**22 - 7} 0\n")
    down(s, echo=lambda _m: None)
    assert not stale.exists()


def test_a_port_taken_by_a_stranger_is_a_sentence(base_env, tmp_path):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        env = dict(
            base_env,
            LAMBDASTACK_STACK__STATE_DIR=str(tmp_path / uuid.uuid4().hex),
            LAMBDASTACK_REDIS__PORT=str(port),
        )
        from lambdastack.errors import ServiceError

        with pytest.raises(
            ServiceError, match=f"port {port} is taken by a process lambdastack did not start"
        ):
            redis.start(load_settings(environ=env))
    finally:
        sock.close()
