"""How a reader judges the speed layer's heartbeat (lambdastack.speed_health)."""

import pytest

from lambdastack.speed_health import heartbeat, judge

pytestmark = pytest.mark.unit
NOW = 1_000_000


def _beat(**changes):
    fields = {k: str(v).encode() for k, v in heartbeat(NOW - 1000, NOW - 2000, 12, False).items()}
    fields.update({k.encode(): str(v).encode() for k, v in changes.items()})
    return {k.encode() if isinstance(k, str) else k: v for k, v in fields.items()}


def _problem(raw):
    return judge(raw, NOW, stale_after_s=8, max_lag=100).problem


def test_a_fresh_heartbeat_of_a_running_job_that_keeps_up_is_healthy():
    h = judge(_beat(), NOW, 8, 100)
    assert h.ok and h.problem == "" and (h.beat_age_ms, h.job_age_ms, h.lag) == (1000, 2000, 12)


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"beat_ms": NOW - 9000}, "has not written its heartbeat for 9 s"),
        ({"job_ms": NOW - 9000}, "the Flink job has not answered as running for 9 s"),
        ({"job_ms": 0}, "the Flink job has not answered as running"),
        ({"replaying": 1}, "rebuilding the speed view"),
        ({"lag": 101}, "101 records behind"),
    ],
)
def test_each_problem_is_named_in_a_sentence(changes, sentence):
    assert sentence in _problem(_beat(**changes))


def test_no_heartbeat_and_an_unknown_lag():
    assert "no speed loader has written its heartbeat" in _problem({})
    assert "no speed loader" in _problem(None)
    h = judge(_beat(lag=-1), NOW, 8, 100)
    assert h.ok and h.lag is None
    assert judge({b"beat_ms": b"junk"}, NOW, 8, 100).beat_age_ms is None


@pytest.mark.parametrize(
    ("changes", "running"),
    [
        ({}, True),
        ({"lag": 101}, True),  # lagging or replaying, the job still runs
        ({"replaying": 1}, True),
        ({"beat_ms": NOW - 9000}, False),  # the loader (speed run) is gone: nobody vouches for the job
        ({"job_ms": NOW - 9000}, False),
        ({"job_ms": 0}, False),
    ],
)
def test_the_job_runs_while_the_heartbeat_and_the_jobs_answer_are_fresh(changes, running):
    assert judge(_beat(**changes), NOW, 8, 100).job_running is running
    assert judge(None, NOW, 8, 100).job_running is False
