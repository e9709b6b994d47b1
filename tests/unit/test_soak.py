"""The pure parts of `lambdastack bench soak`: memory growth after the warm-up, the difference
between Redis's counts and the events sent, and the memory sampler's view of a process tree."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from tools.bench.soak_load import RssSampler, counts_diff, growth

pytestmark = pytest.mark.unit


def test_growth_is_measured_from_the_first_sample_after_the_warmup():
    samples = [(0.0, 100.0), (10.0, 300.0), (20.0, 200.0), (30.0, 210.0), (40.0, 205.0)]
    assert growth(samples, 20.0) == {"rss_at_warmup_mb": 200.0, "rss_max_after_mb": 210.0, "growth": 0.05}
    # the start-up peak before the warm-up does not count; a later peak does
    assert growth([*samples, (50.0, 260.0)], 20.0)["growth"] == 0.3
    assert growth(samples, 60.0) == {"rss_at_warmup_mb": None, "rss_max_after_mb": None, "growth": None}


def test_counts_diff_names_missing_extra_and_wrong_cells():
    expected = Counter({(0, "a"): 3, (0, "b"): 1, (60, "a"): 2})
    assert counts_diff({(0, "a"): 3, (0, "b"): 1, (60, "a"): 2}, expected) == {"cells": 0, "examples": {}}
    got = {(0, "a"): 4, (60, "a"): 2, (60, "z"): 1}  # a counted twice, b lost, z never sent
    assert counts_diff(got, expected) == {
        "cells": 3,
        "examples": {"0/a": (4, 3), "0/b": (0, 1), "60/z": (1, 0)},
    }


def test_the_sampler_records_every_process_of_a_tree_with_its_role():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        rss = RssSampler({"me": os.getpid(), "gone": 2**22 + 1}, every_s=10)
        rss.sample(0.0)
        rss.sample(10.0)
    finally:
        child.kill()
        child.wait()
    assert rss.roles[os.getpid()] == "me" and rss.roles[child.pid].startswith("me.python")
    assert [t for t, _ in rss.samples[child.pid]] == [0.0, 10.0]
    assert all(mb > 1 for _, mb in rss.samples[os.getpid()])
    assert rss.vanished == ["gone (pid 4194305) at 0 s", "gone (pid 4194305) at 10 s"]
