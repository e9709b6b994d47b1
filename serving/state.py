"""What the API holds: the current batch view (swapped whole) and the speed reader."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout
from serving import batch_view
from serving.batch_view import BatchView
from serving.speed_view import SpeedView

log = logging.getLogger("lambdastack.serving")


@dataclass
class ServingState:
    settings: Settings
    layout: VersionLayout
    speed: SpeedView
    view: BatchView = field(default_factory=BatchView.empty)

    def load_current(self) -> bool:
        """Load CURRENT if it differs from the view held; the swap is one reference assignment."""
        vid = self.layout.current()
        if vid is None or vid == self.view.version:
            return False
        self.view = batch_view.load(self.layout, vid)
        log.info("loaded batch version %s (as-of %s)", vid, self.view.as_of_ms)
        return True

    async def follow(self, interval_s: float = 1.0) -> None:
        """Poll CURRENT and load a new version in a worker thread, forever."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.load_current)
            except Exception:  # noqa: BLE001 - keep serving the version held; the log says why
                log.exception("loading the current batch version failed; keeping %s", self.view.version)
