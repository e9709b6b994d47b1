"""What `lambdastack up` leaves running beside the stack: a supervisor that restarts a member that
died (Kafka, Redis, the speed job, the API, Prometheus), with backoff, and counts the restarts.

Every `CHECK_S` it looks at each member's pid file (lambdastack's ManagedProcess). A member found
dead is started again after a wait: `FIRST_WAIT_S` the first time, twice the previous wait each
time it dies again within `HEALTHY_S` of its last start, at most `MAX_WAIT_S`. Members are started
in the stack's order (Kafka and Redis before the speed job and the API) by the same starters `up`
uses, which wait until the member is ready. The restart counts and the next attempt are written to
`{state}/run/supervisor.json`, which `lambdastack stack status` shows. `lambdastack down` stops the
supervisor first, so nothing it stops comes back.

A Redis restarted empty is refilled by the loader (speed.store_epoch); a restarted speed job
resumes from its Kafka offsets and rewrites absolute values, so a restart loses nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

FIRST_WAIT_S = 1.0
MAX_WAIT_S = 60.0
HEALTHY_S = 60.0  # a member up this long after a restart starts again from FIRST_WAIT_S
CHECK_S = 1.0


@dataclass
class MemberState:
    restarts: int = 0
    wait_s: float = FIRST_WAIT_S
    next_try: float | None = None  # monotonic time of the next start attempt, None while it runs
    started: float = 0.0  # monotonic time of the last start
    last_problem: str = ""


class Supervisor:
    """Restarts dead members with backoff. `alive[name]()` says whether a member runs; `start[name]()`
    starts it and waits until it is ready (raising with a sentence when it cannot)."""

    def __init__(
        self,
        alive: Mapping[str, Callable[[], bool]],
        start: Mapping[str, Callable[[], object]],
        record: Path,
        echo: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._alive, self._start, self._record = alive, start, record
        self._echo, self._clock = echo, clock
        self.members = {name: MemberState(started=clock()) for name in alive}

    def tick(self) -> None:
        """One look at every member, in order; a dead one is scheduled, or started when its wait ran out."""
        for name, state in self.members.items():
            now = self._clock()
            if self._alive[name]():
                if state.next_try is None and now - state.started > HEALTHY_S:
                    state.wait_s = FIRST_WAIT_S
                continue
            if state.next_try is None:
                state.next_try = now + state.wait_s
                self._echo(f"[supervisor] {name} is not running; starting it again in {state.wait_s:.0f} s")
            elif now >= state.next_try:
                self._restart(name, state)
        self._write()

    def _restart(self, name: str, state: MemberState) -> None:
        state.restarts += 1
        state.started = self._clock()
        try:
            self._start[name]()
        except Exception as e:  # noqa: BLE001 - reported, and retried after a longer wait
            state.last_problem = f"{type(e).__name__}: {e}"
            self._echo(f"[supervisor] starting {name} failed ({state.last_problem})")
        else:
            state.last_problem = ""
            self._echo(f"[supervisor] {name} started again (restart {state.restarts})")
        state.next_try = None
        state.wait_s = min(state.wait_s * 2, MAX_WAIT_S)

    def _write(self) -> None:
        self._record.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._record.with_suffix(".tmp")
        tmp.write_text(json.dumps({n: asdict(s) for n, s in self.members.items()}))
        tmp.replace(self._record)

    def run(self, stop: threading.Event) -> None:
        self._echo(f"[supervisor] watching {', '.join(self.members)} every {CHECK_S:.0f} s")
        while not stop.wait(CHECK_S):
            self.tick()


def restarts(record: Path) -> dict[str, int]:
    """The restart count per member the supervisor recorded ({} when none ran)."""
    try:
        return {name: int(m["restarts"]) for name, m in json.loads(record.read_text()).items()}
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return {}
