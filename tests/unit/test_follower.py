"""lambdastack.follower: CURRENT is looked at most every check interval; a change swaps in the
newly loaded version whole; a failed load keeps the old one."""

import json
import threading

import pytest

from lambdastack.follower import VersionFollower
from lambdastack.registry import promote, rollback
from lambdastack.versions import MANIFEST, VersionLayout

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _publish(layout, vid):
    d = layout.version_dir(vid)
    d.mkdir(parents=True)
    (d / MANIFEST).write_text(json.dumps({"as_of_ms": 0}))
    layout.set_current(vid)


def test_follows_current_at_most_every_interval(tmp_path):
    layout, clock, loads = VersionLayout(tmp_path), Clock(), []

    def load(published):
        loads.append(published.version)
        return f"value of {published.version}"

    follower = VersionFollower(layout, load, check_every_s=1.0, clock=clock, background=False)
    assert follower.current() is None  # nothing published yet
    _publish(layout, "v000001")
    assert follower.current() is None  # not looked at again within the interval
    clock.t = 1.0
    assert follower.current() == "value of v000001" and follower.version == "v000001"
    _publish(layout, "v000002")
    clock.t = 1.5
    assert follower.current() == "value of v000001"
    clock.t = 2.0
    assert follower.current() == "value of v000002"
    rollback(layout)
    clock.t = 3.0
    assert follower.current() == "value of v000001"
    clock.t = 9.0
    follower.current()
    assert loads == ["v000001", "v000002", "v000001"]  # an unchanged CURRENT is not reloaded


def test_background_load_swaps_when_done_and_a_failure_keeps_the_old_version(tmp_path):
    layout, clock = VersionLayout(tmp_path), Clock()
    release = threading.Event()

    def load(published):
        vid = published.version
        if vid == "v000002":
            release.wait(5)
        if vid == "v000003":
            raise OSError("disk on fire")
        return vid

    for vid in ("v000001", "v000002", "v000003"):
        _publish(layout, vid)
    promote(layout, "v000001")
    follower = VersionFollower(layout, load, check_every_s=1.0, clock=clock)
    assert follower.current() == "v000001"  # the first load is synchronous
    promote(layout, "v000002")
    clock.t = 1.0
    assert follower.current() == "v000001"  # loading in the background; the old one serves
    release.set()
    for _ in range(100):
        if follower.current() == "v000002":
            break
        threading.Event().wait(0.02)
    assert follower.current() == "v000002"
    promote(layout, "v000003")
    clock.t = 2.0
    follower.current()
    threading.Event().wait(0.2)
    assert follower.current() == "v000002" and follower.version == "v000002"


def test_check_loads_now_in_the_caller_and_value_never_looks_at_current(tmp_path):
    layout = VersionLayout(tmp_path)
    follower = VersionFollower(layout, lambda published: published.version, background=False)
    assert follower.check() is False and follower.value is None  # nothing published
    _publish(layout, "v000001")
    assert follower.value is None  # `value` does not look at CURRENT
    assert follower.check() is True and follower.value == "v000001"
    assert follower.check() is False  # CURRENT unchanged: nothing loaded
    _publish(layout, "v000002")
    assert follower.check() is True and (follower.version, follower.value) == ("v000002", "v000002")


def test_a_failing_version_is_retried_with_doubling_waits_and_a_newer_one_at_once(tmp_path):
    """Waits of 1, 2, 4, 8 s, capped at retry_max_s; failures counted; a success clears `failing`."""
    layout, clock, attempts = VersionLayout(tmp_path), Clock(), []
    broken = {"v000002", "v000003"}

    def load(published):
        attempts.append((clock.t, published.version))
        if published.version in broken:
            raise ValueError(f"the model of {published.version} takes 17 features, not 25")
        return published.version

    _publish(layout, "v000001")
    follower = VersionFollower(
        layout, load, check_every_s=1.0, clock=clock, background=False, retry_max_s=5.0
    )
    assert follower.check() and follower.failing is None
    _publish(layout, "v000002")
    for t in range(0, 20):
        clock.t = float(t)
        follower.check()
    tried = [t for t, vid in attempts if vid == "v000002"]
    assert tried == [0.0, 1.0, 3.0, 7.0, 12.0, 17.0]  # waits 1, 2, 4, then the 5 s cap
    assert follower.value == "v000001" and follower.failing == "v000002" and follower.failures == 6
    _publish(layout, "v000003")  # a newer CURRENT is tried at once, with its own backoff
    clock.t = 17.5
    follower.check()
    assert attempts[-1] == (17.5, "v000003") and follower.failing == "v000003"
    broken.clear()
    clock.t = 18.0
    assert follower.check() is False  # still backing off (1 s from 17.5)
    clock.t = 18.5
    assert follower.check() is True and follower.value == "v000003"
    assert follower.failing is None and follower.failures == 7
