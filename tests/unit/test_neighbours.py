"""The co-visitation neighbours of batch/neighbours.py, stated as a plain-Python reference (exact
rationals) and checked on a case worked out by hand. tests/integration/test_neighbours.py holds
the Spark implementation to this reference."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from fractions import Fraction
from typing import NamedTuple

import pytest

from batch.neighbours import MAX_WINDOW
from lambdastack.settings import BatchSettings

pytestmark = pytest.mark.unit


class Ev(NamedTuple):
    event_id: str
    user_id: str
    item_id: str
    type: str
    t: int  # event time, ms


def covisit_reference(events: Iterable[Ev], window: int, n: int) -> dict[str, tuple[list[str], list[float]]]:
    """item -> (its co-visitation neighbours best first, their scores), straight from the
    definition in batch/neighbours.py; sums are exact, so a tie is a tie."""
    timelines: dict[str, list[Ev]] = defaultdict(list)
    for e in events:
        if e.type != "skip":
            timelines[e.user_id].append(e)
    s: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    for evs in timelines.values():
        evs.sort(key=lambda e: (e.t, e.event_id))
        for p, first in enumerate(evs):
            for q in range(p + 1, min(len(evs), p + window + 1)):
                a, b = first.item_id, evs[q].item_id
                if a != b:
                    s[a, b] += Fraction(1, q - p)
                    s[b, a] += Fraction(1, q - p)
    deg: dict[str, Fraction] = defaultdict(Fraction)
    for (a, _), v in s.items():
        deg[a] += v
    out = {}
    for a in sorted(deg):
        # score^2 = S^2 / (deg(a) deg(b)) is rational: rank by it exactly, then by id
        others = sorted((b for (x, b) in s if x == a), key=lambda b: (-(s[a, b] ** 2) / (deg[a] * deg[b]), b))
        top = others[:n]
        out[a] = (top, [float(s[a, b]) / math.sqrt(float(deg[a] * deg[b])) for b in top])
    return out


# u1: x y [skip z] z x (the skip holds no position); u2: y z y at one instant, ordered by event_id
HAND = [
    Ev("e1", "u1", "x", "view", 1),
    Ev("e2", "u1", "y", "click", 2),
    Ev("e3", "u1", "z", "skip", 3),
    Ev("e4", "u1", "z", "view", 3),
    Ev("e5", "u1", "x", "like", 4),
    Ev("e9", "u2", "y", "view", 5),
    Ev("e7", "u2", "y", "view", 5),
    Ev("e8", "u2", "z", "view", 5),
]


def test_the_reference_on_a_case_worked_out_by_hand():
    # W=2. u1 positions x0 y1 z2 x3: x-y 1 (0,1), x-z 1/2 (0,2), y-z 1 (1,2), y-x 1/2 (1,3), z-x 1
    # (2,3); x0-x3 is 3 apart. u2 by event_id: y(e7) z(e8) y(e9): y-z 1, z-y 1 (y-y adds nothing).
    # S(x,y) = 3/2, S(x,z) = 3/2, S(y,z) = 1 + 2 = 3; deg x = 3, y = z = 9/2.
    # score(x,y) = score(x,z) = (3/2)/sqrt(27/2) = 1/sqrt(6) (a tie: y first); score(y,z) = 2/3.
    r6 = 1 / math.sqrt(6)
    got = covisit_reference(HAND, window=2, n=5)
    assert list(got) == ["x", "y", "z"]
    assert got["x"][0] == ["y", "z"] and got["x"][1] == pytest.approx([r6, r6], abs=1e-12)
    assert got["y"][0] == ["z", "x"] and got["y"][1] == pytest.approx([2 / 3, r6], abs=1e-12)
    assert got["z"][0] == ["y", "x"] and got["z"][1] == pytest.approx([2 / 3, r6], abs=1e-12)
    # W=1: x-y 1, y-z 1, z-x 1 from u1, y-z 2 from u2: deg x = 2, y = z = 4
    w1 = covisit_reference(HAND, window=1, n=1)
    assert w1["x"] == (["y"], [pytest.approx(1 / math.sqrt(8), abs=1e-12)])
    assert w1["y"] == (["z"], [pytest.approx(3 / 4, abs=1e-12)])


def test_an_item_met_only_by_itself_or_in_skips_has_no_covisit_neighbours():
    events = [Ev("a", "u", "p", "view", 1), Ev("b", "u", "p", "view", 2), Ev("c", "u", "q", "skip", 3)]
    assert covisit_reference(events, window=20, n=100) == {}


def test_the_window_bound_in_the_settings_is_the_one_the_integer_sums_are_exact_for():
    (le,) = [m.le for m in BatchSettings.model_fields["covisit_window"].metadata if hasattr(m, "le")]
    assert le == MAX_WINDOW
    scale = math.lcm(*range(1, MAX_WINDOW + 1))
    per_event = 2 * scale * sum(Fraction(1, d) for d in range(1, MAX_WINDOW + 1))
    assert per_event * 40_000_000 < 2**63  # the docstring's 4*10^7 events of one item
    assert BatchSettings().covisit_window == 20 and BatchSettings().neighbours_n == 100
