import pytest

from speed.windows import MINUTE_MS, window_sums

pytestmark = pytest.mark.unit
T0 = 1_795_870_800_000  # a minute start


def test_window_sums_take_the_newest_minutes_up_to_now():
    minutes = {
        f"{T0}:view": 2,
        f"{T0}:*": 3,
        f"{T0}:like": 1,
        f"{T0 - MINUTE_MS}:*": 4,
        f"{T0 - 9 * MINUTE_MS}:*": 5,
        f"{T0 - 10 * MINUTE_MS}:*": 6,
        f"{T0 - 59 * MINUTE_MS}:*": 7,
        f"{T0 - 60 * MINUTE_MS}:*": 100,  # older than the hour: in no window
        f"{T0 + MINUTE_MS}:*": 1000,  # after now: in no window
    }
    got = window_sums(minutes, now_ms=T0 + 30_000)
    assert got[60] == {"view": 2, "*": 3, "like": 1}
    assert got[600] == {"view": 2, "*": 3 + 4 + 5, "like": 1}
    assert got[3600] == {"view": 2, "*": 3 + 4 + 5 + 6 + 7, "like": 1}


def test_window_sums_read_redis_bytes_and_custom_windows():
    minutes = {f"{T0}:*".encode(): b"3", f"{T0 - MINUTE_MS}:*".encode(): b"4"}
    assert window_sums(minutes, T0, windows_s=(60, 120)) == {60: {"*": 3}, 120: {"*": 7}}
    assert window_sums({}, T0) == {60: {}, 600: {}, 3600: {}}
