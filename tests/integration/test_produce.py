"""`lambdastack produce`: files and simulated streams reach Kafka keyed by user; bad lines are
dead-lettered with file and line, never dropped."""

from __future__ import annotations

import json

import pytest

from tests.integration.helpers import consume_all, run_cli
from tools.stack import kafka

pytestmark = pytest.mark.integration


def test_produce_a_file_with_a_bad_line(services, isolated, tmp_path):
    kafka.create_topics(isolated.settings)
    good = [
        {
            "event_id": f"f{n}",
            "user_id": f"u{n % 3}",
            "item_id": "i1",
            "type": "like",
            "event_time": "2026-11-28T10:00:00Z",
        }
        for n in range(5)
    ]
    lines = [json.dumps(g) for g in good]
    lines.insert(2, '{"event_id": "f-bad", "user_id": "u1", "type": "like"}')
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = run_cli(["produce", "--file", str(path), "--rate", "1000"], isolated.env)
    assert done.returncode == 0, done.stderr
    assert "sent 5 events" in done.stdout and "1 invalid" in done.stdout
    records = consume_all(isolated.settings, isolated.settings.topics.events, 5)
    assert sorted(json.loads(r.value)["event_id"] for r in records) == [f"f{n}" for n in range(5)]
    assert all(r.key == json.loads(r.value)["user_id"].encode() for r in records)
    dead = consume_all(isolated.settings, isolated.settings.topics.dead_letter, 1)
    assert len(dead) == 1
    letter = json.loads(dead[0].value)
    assert letter["source"] == f"{path}:3"
    assert letter["reason"] == "item_id: is required; event_time: is required"


def test_produce_a_simulated_stream_at_a_rate(services, isolated):
    kafka.create_topics(isolated.settings)
    done = run_cli(["produce", "--simulate", "--rate", "200", "--seconds", "2"], isolated.env)
    assert done.returncode == 0, done.stderr
    sent = int(done.stdout.split()[1])
    assert 300 <= sent <= 420  # 200/s for 2 s, with start-up slack
    records = consume_all(isolated.settings, isolated.settings.topics.events, sent)
    assert len(records) == sent


def test_records_that_cannot_be_sent_fail_the_run_and_are_named(services, isolated, tmp_path):
    """A record Kafka does not take is not counted as delivered: the run exits non-zero and names
    its line (the same list holds records whose delivery the broker later fails)."""
    line = {
        "event_id": "x1",
        "user_id": "u1",
        "item_id": "i1",
        "type": "like",
        "event_time": "2026-11-28T10:00:00Z",
    }
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(line) + "\n")
    env = {
        **isolated.env,
        "LAMBDASTACK_TOPICS__EVENTS": "__consumer_offsets",
    }  # internal: clients cannot write
    done = run_cli(["produce", "--file", str(path)], env, timeout_s=120)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "1 NOT delivered" in done.stdout
    assert f"not delivered: {path}:1:" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_broker_is_a_sentence_and_a_failed_run(isolated, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("{}\n")
    env = {**isolated.env, "LAMBDASTACK_KAFKA__PORT": "1"}  # nothing listens on port 1
    done = run_cli(["produce", "--file", str(path)], env, timeout_s=120)
    assert done.returncode != 0
    assert "cannot reach Kafka at 127.0.0.1:1" in done.stderr and "Traceback" not in done.stderr
