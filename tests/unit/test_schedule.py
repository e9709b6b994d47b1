"""`make test`'s work units (tests/schedule.py): whole modules, the shared-version modules
together, the longest unit first."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.schedule import SHARED, SHARED_MODULES, unit_of, work_units

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_the_shared_unit_is_every_module_that_uses_the_shared_version():
    uses = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests" / "integration").glob("test_*.py")
        if re.search(r"\bshared_version\b", p.read_text())
    }
    assert uses == SHARED_MODULES  # a module left out still passes, but builds the version again


def test_units_go_longest_first_and_keep_each_modules_tests_together_in_order():
    tests = [
        ("tests/unit/test_a.py", 1),
        ("tests/integration/test_up.py", 1),
        ("tests/integration/test_batch.py", 1),
        ("tests/unit/test_a.py", 2),
        ("tests/integration/test_stack.py", 1),
        ("tests/integration/test_hostile.py", 1),
        ("tests/integration/test_up.py", 2),
        ("tests/integration/test_batch.py", 2),
    ]
    ordered = work_units(tests, lambda t: t[0])
    assert [unit_of(m) for m, _n in ordered] == [
        SHARED,  # test_batch + test_hostile: 285 s
        SHARED,
        SHARED,
        "tests/integration/test_up.py",  # 150 s
        "tests/integration/test_up.py",
        "tests/integration/test_stack.py",  # 40 s
        "tests/unit/test_a.py",  # 2 s
        "tests/unit/test_a.py",
    ]
    assert ordered[:3] == [tests[2], tests[5], tests[7]]  # collection order within the unit
    assert ordered[3:5] == [tests[1], tests[6]]
