"""What the API holds: the current snapshot (replaced whole) and the speed reader."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout
from serving import snapshot as snapshots
from serving.snapshot import Snapshot
from serving.speed_view import SpeedView

log = logging.getLogger("lambdastack.serving")


@dataclass
class ServingState:
    settings: Settings
    layout: VersionLayout
    speed: SpeedView
    snapshot: Snapshot = field(default_factory=Snapshot.empty)
    on_swap: Callable[[Snapshot], None] = lambda _s: None

    def load_current(self) -> bool:
        """Load CURRENT if it differs from the snapshot held; the swap is one reference assignment."""
        vid = self.layout.current()
        if vid is None or vid == self.snapshot.version:
            return False
        fresh = snapshots.build(self.layout, vid, self.settings.serving.ab)
        # the version's objects are long-lived: keep them out of the collector's full passes,
        # which otherwise walk them all and stall requests
        gc.freeze()
        self.snapshot = fresh
        self.on_swap(fresh)
        log.info(
            "loaded batch version",
            extra={
                "fields": {
                    "version": vid,
                    "as_of_ms": fresh.view.as_of_ms,
                    "challenger": fresh.challenger.version if fresh.challenger else None,
                }
            },
        )
        return True

    async def follow(self) -> None:
        """Poll CURRENT and load a new version in a worker thread, forever."""
        while True:
            await asyncio.sleep(self.settings.serving.reload_interval_s)
            try:
                await asyncio.to_thread(self.load_current)
            except Exception:  # noqa: BLE001 - keep serving the snapshot held; the log says why
                log.exception("loading the current batch version failed; keeping %s", self.snapshot.version)
