"""POST /v1/events to Kafka: validated events go through lambdastack.producer, opened on first use
(the API starts and serves feeds without Kafka) and acknowledged before the API answers 202."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from lambdastack.errors import ServiceError
from lambdastack.events import Event
from lambdastack.producer import EventProducer
from lambdastack.settings import Settings

ACK_TIMEOUT_S = 10.0


class EventSink:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._producer: EventProducer | None = None
        self._lock = threading.Lock()

    @property
    def topic(self) -> str:
        return self._settings.topics.events

    def _open(self) -> EventProducer:
        with self._lock:
            if self._producer is None:
                self._producer = EventProducer(self._settings).open()
            return self._producer

    def _send_all(self, events: list[Event]) -> None:
        try:
            producer = self._open()
            futures: list[Any] = [producer.send(e) for e in events]
            producer.flush()
            for f in futures:
                f.get(timeout=ACK_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - any Kafka client failure is "Kafka unavailable"
            raise ServiceError(
                f"the events could not be written to Kafka topic {self.topic} "
                f"({type(e).__name__}); retry later"
            ) from None

    async def send_all(self, events: list[Event]) -> None:
        """Produce and wait for Kafka's acknowledgement of every event; ServiceError if it fails."""
        await asyncio.to_thread(self._send_all, events)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
