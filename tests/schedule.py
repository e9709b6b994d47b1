"""How `make test` splits the suite over its pytest-xdist workers (`--dist loadscope`, whose
scopes tests/conftest.py makes these work units).

A work unit runs whole on one worker, so its module-scoped fixtures (a speed job, a published
store) start once. A unit is one test module, except that the modules using the session's shared
synthetic version (`shared_version`: two batch runs) form one unit, so that version is built once
(`SHARED_MODULES`; a unit test keeps the list equal to the modules that use the fixture). Units
go longest first (the longest-processing-time rule), by the seconds each took in a serial run on
this machine (2 cores, load ≈ 3 from the suite itself); a module not listed counts as
`DEFAULT_S`. The figures only order the work: a wrong one costs balance, never a result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
SHARED = "shared-version"
SHARED_MODULES = frozenset(
    f"tests/integration/{m}.py"
    for m in (
        "test_batch",
        "test_bench_serving",
        "test_end_to_end",
        "test_hostile",
        "test_model_faults",
        "test_serving_live",
        "test_spark_cluster",
        "test_speed_faults",
        "test_speed_users",
    )
)
DEFAULT_S = {"integration": 20.0, "unit": 2.0}
# seconds per module, serial, 2026-12-02 (tests/integration/; the unit tests take 1 to 10 s each)
MEASURED_S = {
    "test_batch_kill": 300.0,
    "test_eval_retrains": 175.0,
    "test_up": 150.0,
    "test_broker_faults": 140.0,
    "test_speed_recovery": 310.0,
    "test_eval_consistency": 100.0,
    "test_feed_reacts": 100.0,
    "test_bench_batch": 80.0,
    "test_bench_soak": 190.0,
    "test_speed_savepoint": 80.0,
    "test_speed": 80.0,  # with the poison test (one job)
    "test_speed_signals": 60.0,
    "test_bench_speed": 50.0,
    "test_produce": 45.0,
    "test_stack": 40.0,
    "test_archive": 40.0,
    "test_neighbours": 20.0,
    "test_prometheus": 30.0,  # 2026-12-04: the API and Prometheus, no Flink job
    # the shared-version unit: its members' seconds add up
    "test_batch": 240.0,
    "test_spark_cluster": 120.0,
    "test_serving_live": 90.0,
    "test_speed_faults": 100.0,  # with four doctor runs
    "test_speed_users": 100.0,
    "test_end_to_end": 50.0,
    "test_hostile": 45.0,
    "test_model_faults": 30.0,
    "test_bench_serving": 60.0,
}


def module_of(nodeid: str) -> str:
    """The test module (its path from the repository root) of a pytest node id."""
    return nodeid.split("::")[0]


def unit_of(module: str) -> str:
    """The work unit of a test module."""
    return SHARED if module in SHARED_MODULES else module


def _seconds(module: str) -> float:
    if module.startswith("tests/unit/"):
        return DEFAULT_S["unit"]
    return MEASURED_S.get(module.rsplit("/", 1)[-1].removesuffix(".py"), DEFAULT_S["integration"])


def work_units(tests: Iterable[T], module_of: Callable[[T], str]) -> list[T]:
    """The tests ordered unit by unit, the longest unit first, each test in its collection order
    within its unit (ties between units: the one collected first)."""
    tests = list(tests)
    cost: dict[str, float] = {}
    first: dict[str, int] = {}
    for module in dict.fromkeys(module_of(t) for t in tests):
        unit = unit_of(module)
        cost[unit] = cost.get(unit, 0.0) + _seconds(module)
        first.setdefault(unit, len(first))

    def key(t: T) -> tuple[float, int]:
        unit = unit_of(module_of(t))
        return -cost[unit], first[unit]

    return sorted(tests, key=key)
