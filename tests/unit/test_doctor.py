"""`lambdastack doctor` without a service: the verdicts on plain facts, the
probes' runner (a hanging probe, a raising one), the screen and the exit code."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from lambdastack.speed_health import drift_report, heartbeat, judge
from tools.cli import main
from tools.doctor import checks, probes
from tools.doctor.checks import Check
from tools.doctor.screen import WIDTH, exit_code, render

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000_000
HOUR, DAY = 3_600_000, 86_400_000


def _health(**changes):
    beat = {k: str(v) for k, v in heartbeat(NOW - 500, NOW - 700, 3, False).items()}
    beat.update({k: str(v) for k, v in changes.items()})
    return judge(beat, NOW, 8, 100)


def test_a_service_is_up_with_its_address_and_version_or_down_with_how_to_start_it():
    up = checks.service("Redis", "127.0.0.1:6379", "redis 7.0.15", None, "start it with `x`")
    assert (up.status, up.detail, up.todo) == ("ok", "up at 127.0.0.1:6379, redis 7.0.15", "")
    down = checks.service("Redis", "127.0.0.1:6379", None, "Connection refused", "start it with `x`")
    assert down.status == "fail" and "Connection refused" in down.detail
    assert down.todo == "Redis at 127.0.0.1:6379 does not answer: start it with `x`."


def test_the_speed_job_is_judged_by_its_process_its_heartbeat_and_its_restarts():
    run = (123, "3f2a9c01deadbeef")
    ok = checks.speed_job(run, _health(), 0, "speed.log", "flink 2.2.1")
    assert ok.status == "ok" and ok.detail == "RUNNING, pid 123, job 3f2a9c01, restarts 0, flink 2.2.1"
    dead = checks.speed_job(None, _health(), 0, "speed.log", "flink 2.2.1")
    assert (
        dead.status == "fail"
        and dead.todo.startswith("The speed job is not running")
        and "speed.log" in dead.todo
    )
    stale = checks.speed_job(run, _health(job_ms=NOW - 20_000), 0, "speed.log", "f")
    assert stale.status == "fail" and "the Flink job has not answered as running for 20 s" in stale.todo
    restarted = checks.speed_job(run, _health(), 2, "speed.log", "f")
    assert restarted.status == "warn" and "restarted 2 times" in restarted.todo
    unknown = checks.speed_job(run, _health(), "speed.flink_metrics_port is 0", "speed.log", "f")
    assert unknown.status == "ok" and "restarts unknown (speed.flink_metrics_port is 0)" in unknown.detail
    assert checks.speed_job(run, None, 0, "speed.log", "f").status == "skip"  # Redis's own check fails


def test_a_consumer_group_lagging_beyond_max_lag_records_fails():
    assert checks.lag("loader", "g", 100, 100).status == "ok"
    behind = checks.lag("loader", "g", 101, 100)
    assert (
        behind.status == "fail"
        and "101 records behind" in behind.todo
        and "speed.max_lag_records" in behind.todo
    )
    assert checks.lag("loader", "g", None, 100).detail == "g: no offsets committed yet"


def test_lag_counts_each_partition_from_its_committed_offset_or_else_its_earliest():
    ends = {("ev", 0): (0, 10), ("ev", 1): (5, 8), ("sig", 0): (0, 4)}  # (earliest, latest)
    assert probes.behind(ends, {("ev", 0): 7}, ("ev",)) == 3 + 3  # p1 committed nothing: all it holds
    assert probes.behind(ends, {("ev", 0): 10, ("ev", 1): 8, ("sig", 0): 0}, ("ev",)) == 0
    assert probes.behind(ends, {("ev", 1): 2}, ("ev",)) == 10 + 3  # an offset before the earliest
    assert probes.behind(ends, {}, ("ev",)) == 10 + 3  # the archiver before its first roll
    assert probes.behind(ends, None, ("ev",)) is None  # a group that never committed


@pytest.mark.parametrize(
    ("signal_ms", "event_ms", "status"),
    [
        (None, None, "ok"),  # a quiet stack
        (NOW - 2000, NOW - 2500, "ok"),  # the signal came after the event
        (NOW - HOUR, NOW - 2 * HOUR, "ok"),  # old, but nothing happened since
        (NOW - 60_000, NOW - 30_000, "fail"),  # an event 30 s newer than any signal, 30 s ago
        (NOW - 60_000, NOW - 3_000, "ok"),  # a newer event, but the job has speed.stale_after_s for it
        (None, NOW - 60_000, "fail"),  # events and never a signal
    ],
)
def test_the_newest_signal_is_judged_against_the_newest_event(signal_ms, event_ms, status):
    c = checks.signal(signal_ms, event_ms, NOW, stale_after_s=8)
    assert c.status == status, c
    assert bool(c.todo) == (status == "fail")


def test_a_version_older_than_twice_the_schedule_fails_naming_it():
    fresh = checks.batch_version("v000002", NOW - 30 * HOUR, NOW, "0 2 * * *", DAY)
    assert (
        fresh.status == "ok" and fresh.detail == "v000002, as of 1.2 d ago (schedule 0 2 * * *: every 1.0 d)"
    )
    stale = checks.batch_version("v000001", NOW - 3 * DAY, NOW, "0 2 * * *", DAY)
    assert stale.status == "fail" and stale.todo.startswith("Batch version v000001 is 3.0 d old")
    assert checks.batch_version(None, None, NOW, "0 2 * * *", DAY).status == "fail"


def test_the_model_the_api_loaded_must_be_currents():
    assert checks.model("v000002", "v000002", "v000002", True).status == "ok"
    behind = checks.model("v000001", "v000001", "v000002", True)
    assert behind.status == "fail" and "v000001 while CURRENT is v000002" in behind.todo
    assert checks.model("v000001", None, "v000001", True).status == "fail"
    assert checks.model(None, None, "v000001", False).status == "skip"


def test_drift_warns_on_the_loaders_alert_flag_naming_the_worst_feature():
    report = {
        "item_pop": "0.05",
        "knn_score": "0.31",
        "alert": "1",
        "window_end_ms": str(NOW - 60_000),
        "events": "400",
    }
    c = checks.drift(drift_report(report), 0.2, NOW)
    assert c.status == "warn" and "knn_score" in c.todo and "0.31" in c.todo
    assert "400 events, 1 min ago" in c.detail
    assert checks.drift(drift_report({**report, "alert": "0"}), 0.2, NOW).status == "ok"
    assert checks.drift(drift_report({}), 0.2, NOW).detail == "no drift window closed yet"
    assert checks.drift(None, 0.2, NOW).status == "skip"


def test_disk_fails_below_the_free_space_minimum():
    assert checks.disk(5 << 20, True, 2 << 30, 1024, "/s").detail == "5.0 MB in /s, 2.0 GB free"
    low = checks.disk(5 << 20, False, 512 << 20, 1024, "/s")
    assert (
        low.status == "fail"
        and low.detail.startswith("at least 5.0 MB")
        and "doctor.min_free_disk_mb" in low.todo
    )


def test_a_probe_that_raises_or_hangs_comes_back_as_one_line_within_the_timeout():
    hang = threading.Event()
    started = time.monotonic()
    found = probes.gather(
        {"fine": lambda: 42, "raises": lambda: 1 / 0, "hangs": lambda: hang.wait(30)}, timeout_s=0.5
    )
    assert time.monotonic() - started < 2
    hang.set()
    assert found["fine"] == probes.Outcome(42)
    assert found["raises"].error == "division by zero"
    assert found["hangs"].error == "no answer within 0.5 s"


SCREEN = [
    Check("Kafka", "ok", "up at 127.0.0.1:9092, kafka 4.1.1, 1 broker(s)"),
    Check(
        "Redis",
        "fail",
        "down at 127.0.0.1:6379: " + "x" * 100,
        "Redis at 127.0.0.1:6379 does not answer: start it.",
    ),
    Check("drift", "skip", "not known (Redis does not answer)"),
    Check("batch", "warn", "v000001 old", "Batch version v000001 is old: " + "run the batch job " * 6),
]


def test_the_screen_is_one_line_per_check_within_80_columns_then_one_sentence_per_problem():
    lines = render(SCREEN).splitlines()
    assert len(lines[0]) == len("ok   Kafka          up at 127.0.0.1:9092, kafka 4.1.1, 1 broker(s)")
    assert [ln.split()[0] for ln in lines[:4]] == ["ok", "FAIL", "--", "WARN"]
    assert all(ln[5:19].rstrip() == c.name for ln, c in zip(lines, SCREEN, strict=False))  # one column
    assert lines[1].endswith("...") and len(lines[1]) == WIDTH
    assert all(len(ln) <= WIDTH for ln in lines)
    assert lines[4:6] == ["", "2 problems:"]
    sentences = " ".join(lines[6:]).replace("   ", " ").split("- ")[1:]
    assert [s.strip() for s in sentences] == [c.todo.strip() for c in SCREEN if c.problem]


def test_the_exit_code_is_0_when_healthy_1_for_a_warning_2_for_a_failure():
    ok = [c for c in SCREEN if c.status in ("ok", "skip")]
    assert exit_code(ok) == 0 and render(ok).endswith("healthy: every check is ok")
    assert exit_code([*ok, SCREEN[3]]) == 1
    assert exit_code(SCREEN) == 2


def test_doctor_reads_the_config_file_it_is_given_and_says_what_is_down_in_sentences(tmp_path, capsys):
    """`lambdastack --config F doctor` with nothing listening on F's ports (port 1 is refused)."""
    conf = tmp_path / "conf" / "lambdastack.yaml"
    conf.parent.mkdir()
    text = (ROOT / "conf" / "lambdastack.yaml").read_text()
    text = text.replace("state_dir: .state ", f"state_dir: {tmp_path / 'state'} ").replace(
        "port: 9092", "port: 1"
    )
    text = text.replace("port: 6379", "port: 2").replace("port: 8000", "port: 3")
    text = text.replace("probe_timeout_s: 2.0", "probe_timeout_s: 0.5")
    conf.write_text(text)
    (tmp_path / "state").mkdir()
    started = time.monotonic()
    assert main(["--config", str(conf), "doctor"]) == 2
    assert time.monotonic() - started < 5
    out = capsys.readouterr().out
    for name, port in (("Kafka", 1), ("Redis", 2), ("API", 3)):
        assert re.search(rf"^FAIL {name} +down at 127.0.0.1:{port}: ", out, re.M), out
        assert f"- {name} at 127.0.0.1:{port} does not answer: start it with" in out
    assert "Traceback" not in out and "- The speed job is not running" in out
    assert "- No batch version is published: run `lambdastack batch run`." in out
