"""What the API holds: the served version (followed with lambdastack.follower, replaced whole)
and the speed reader."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from functools import partial

from lambdastack.follower import VersionFollower
from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout
from serving import served_version
from serving.served_version import ServedVersion
from serving.speed_view import SpeedView

log = logging.getLogger("lambdastack.serving")


class ServingState:
    """The served version, its follower, and the speed reader of one app."""

    def __init__(
        self,
        settings: Settings,
        layout: VersionLayout,
        speed: SpeedView,
        on_swap: Callable[[ServedVersion], None] = lambda _s: None,
        on_checked: Callable[[int, str | None], None] = lambda _n, _v: None,
    ):
        self.settings, self.layout, self.speed, self.on_swap = settings, layout, speed, on_swap
        self.on_checked = on_checked  # after each look at CURRENT: failed loads so far, the failing version
        load = partial(served_version.load, ab=settings.serving.ab)
        # loads run in the caller's thread: load_current's, a worker thread of `follow`
        # a version that fails to load is retried after the reload interval, then twice as long
        # each time, at most a minute
        self.follower = VersionFollower(layout, load, settings.serving.reload_interval_s, background=False)
        self._empty = ServedVersion.empty()

    @property
    def served(self) -> ServedVersion:
        """The version requests read now (empty before the first load); take it once per request."""
        value = self.follower.value
        return self._empty if value is None else value

    def load_current(self) -> bool:
        """Load CURRENT if it differs from the version held; the swap is one reference assignment.
        A version that fails to load leaves the one held in use and is retried with backoff."""
        swapped = self.follower.check()
        self.on_checked(self.follower.failures, self.follower.failing)
        if not swapped:
            return False
        fresh = self.served
        # the version's objects are long-lived: keep them out of the collector's full passes,
        # which otherwise walk them all and stall requests
        gc.freeze()
        self.on_swap(fresh)
        log.info(
            "loaded batch version",
            extra={
                "fields": {
                    "version": fresh.version,
                    "as_of_ms": fresh.view.as_of_ms,
                    "challenger": fresh.challenger.version if fresh.challenger else None,
                }
            },
        )
        return True

    async def follow(self) -> None:
        """Look at CURRENT every `serving.reload_interval_s` and load a new version in a worker
        thread, forever (a failed load keeps the version held: lambdastack.follower)."""
        while True:
            await asyncio.sleep(self.settings.serving.reload_interval_s)
            try:
                await asyncio.to_thread(self.load_current)
            except Exception:  # noqa: BLE001 - e.g. CURRENT unreadable: keep the version held
                log.exception("following the current batch version failed; keeping %s", self.served.version)
