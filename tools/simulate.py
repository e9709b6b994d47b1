"""Live event streams for `lambdastack produce --simulate`: the synthetic world, timed now."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import numpy as np

from lambdastack.events import Event
from lambdastack.producer import paced
from tools.datasets.synthetic import make_world, sample_items, sample_types


def stream(
    rate: float, seconds: float, n_users: int = 1000, n_items: int = 500, seed: int = 7
) -> Iterator[Event]:
    """Events at `rate`/s for `seconds` (as fast as possible for `seconds` if rate <= 0)."""
    world = make_world(n_users, n_items, seed)
    rng = np.random.default_rng()
    run = uuid.uuid4().hex[:8]
    deadline = time.monotonic() + seconds
    chunk = 1000
    n = 0

    def events() -> Iterator[Event]:
        nonlocal n
        while time.monotonic() < deadline:
            users = np.searchsorted(world.activity_cum, rng.random(chunk)).clip(0, n_users - 1)
            items = sample_items(world, users, rng)
            types, values = sample_types(chunk, rng)
            for u, i, t, v in zip(users, items, types, values, strict=True):
                if time.monotonic() >= deadline:
                    return
                n += 1
                yield Event(f"sim-{run}-{n}", f"u{u}", f"i{i}", str(t), float(v), int(time.time() * 1000))

    yield from paced(events(), rate)


def burst(item_id: str, user_id: str, count: int, etype: str = "view") -> Iterator[Event]:
    """`count` events of one item, timed now."""
    run = uuid.uuid4().hex[:8]
    for n in range(count):
        yield Event(f"burst-{run}-{n}", user_id, item_id, etype, 1.0, int(time.time() * 1000))
