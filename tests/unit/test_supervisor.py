"""The stack's supervisor (pure logic, fake members on a fake clock): a dead member is started
again after a wait that doubles while it keeps dying, resets once it stays up, and the restarts are
recorded for `stack status`."""

import pytest

from tools.stack.supervisor import FIRST_WAIT_S, HEALTHY_S, MAX_WAIT_S, Supervisor, restarts

pytestmark = pytest.mark.unit


class World:
    def __init__(self) -> None:
        self.t = 0.0
        self.up = {"redis": True, "api": True}
        self.fail_start = False
        self.dies_at_once: set[str] = set()
        self.started: list[tuple[float, str]] = []

    def clock(self) -> float:
        return self.t

    def starter(self, name: str):
        def start() -> None:
            self.started.append((self.t, name))
            if self.fail_start:
                raise RuntimeError("port 8000 is taken")
            self.up[name] = name not in self.dies_at_once

        return start


def _supervisor(world: World, tmp_path, said: list[str]) -> Supervisor:
    alive = {n: (lambda n=n: world.up[n]) for n in world.up}
    start = {n: world.starter(n) for n in world.up}
    return Supervisor(alive, start, tmp_path / "supervisor.json", echo=said.append, clock=world.clock)


def _run(sup: Supervisor, world: World, seconds: float) -> None:
    end = world.t + seconds
    while world.t < end:
        sup.tick()
        world.t += 0.5


def test_a_member_that_keeps_dying_is_restarted_with_doubling_waits(tmp_path):
    world, said = World(), []
    world.dies_at_once = {"api"}
    sup = _supervisor(world, tmp_path, said)
    world.up["api"] = False
    _run(sup, world, 300)
    times = [t for t, n in world.started if n == "api"]
    waits = [b - a for a, b in zip(times, times[1:], strict=False)]
    expected = [2.0, 4.0, 8.0, 16.0, 32.0, MAX_WAIT_S, MAX_WAIT_S]  # after the first wait of 1 s
    assert times[0] <= FIRST_WAIT_S + 0.5
    assert [round(w) for w in waits[: len(expected)]] == [round(w + 0.5) for w in expected]
    assert sup.members["redis"].restarts == 0
    assert restarts(tmp_path / "supervisor.json") == {"redis": 0, "api": len(times)}
    assert any("api is not running; starting it again in 1 s" in m for m in said)


def test_the_first_restart_comes_after_the_first_wait_and_a_stable_member_resets(tmp_path):
    world, said = World(), []
    sup = _supervisor(world, tmp_path, said)
    world.up["redis"] = False
    _run(sup, world, FIRST_WAIT_S + 1)
    assert [n for _, n in world.started] == ["redis"] and world.up["redis"]
    assert sup.members["redis"].wait_s == 2 * FIRST_WAIT_S
    _run(sup, world, HEALTHY_S + 1)  # stays up: the next death waits the first wait again
    assert sup.members["redis"].wait_s == FIRST_WAIT_S
    assert "redis started again (restart 1)" in " ".join(said)


def test_a_start_that_fails_is_said_and_tried_again_later(tmp_path):
    world, said = World(), []
    sup = _supervisor(world, tmp_path, said)
    world.up["api"], world.fail_start = False, True
    _run(sup, world, 10)
    assert len([n for _, n in world.started]) >= 2 and not world.up["api"]
    assert any("starting api failed (RuntimeError: port 8000 is taken)" in m for m in said)
    world.fail_start = False
    _run(sup, world, 20)
    assert world.up["api"] and sup.members["api"].last_problem == ""


def test_no_record_means_no_restarts(tmp_path):
    assert restarts(tmp_path / "missing.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert restarts(tmp_path / "bad.json") == {}
