"""POST /v1/events to Kafka: validated events go through lambdastack.producer, opened on first use
(the API starts and serves feeds without Kafka) and acknowledged before the API answers 202.
A broker that is away or does not answer gets the request a 503 within `serving.ingest_timeout_ms`:
the producer's deadline is that timeout, and the API stops waiting for it then too."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from lambdastack.errors import ServiceError
from lambdastack.events import Event
from lambdastack.producer import EventProducer
from lambdastack.settings import Settings


class EventSink:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._timeout_s = settings.serving.ingest_timeout_ms / 1000
        self._producer: EventProducer | None = None
        self._lock = threading.Lock()

    @property
    def topic(self) -> str:
        return self._settings.topics.events

    def _open(self) -> EventProducer:
        with self._lock:
            if self._producer is None:
                deadline_ms = self._settings.serving.ingest_timeout_ms
                self._producer = EventProducer(self._settings, deadline_ms=deadline_ms).open()
            return self._producer

    def _send_all(self, events: list[Event]) -> None:
        deadline = time.monotonic() + self._timeout_s
        try:
            producer = self._open()
        except Exception as e:  # noqa: BLE001 - any Kafka client failure is "Kafka unavailable"
            raise self._unavailable(type(e).__name__) from None
        try:
            futures: list[Any] = [producer.send(e) for e in events]
            if any(f is None for f in futures):
                raise RuntimeError("a send was refused")
            producer.flush(timeout_s=max(0.0, deadline - time.monotonic()))
            for f in futures:
                f.get(timeout=max(0.001, deadline - time.monotonic()))
        except Exception as e:  # noqa: BLE001 - any Kafka client failure is "Kafka unavailable"
            self._drop(producer)
            raise self._unavailable(type(e).__name__) from None
        finally:
            producer.failures.clear()  # the futures tell this request's outcome; keep the list bounded

    def _drop(self, producer: EventProducer) -> None:
        """Forget a producer that failed: the next request opens a new one (an idempotent producer
        can be left in a state it never leaves, e.g. after the broker restarted and lost its
        sequence numbers); the old one is closed in the background."""
        with self._lock:
            if self._producer is not producer:
                return
            self._producer = None
        threading.Thread(target=producer.close, args=(1.0,), daemon=True).start()

    def _unavailable(self, why: str) -> ServiceError:
        return ServiceError(
            f"the events could not be written to Kafka topic {self.topic} ({why}); retry later "
            "with the same event ids"
        )

    async def send_all(self, events: list[Event]) -> None:
        """Produce and wait for Kafka's acknowledgement of every event, at most
        `serving.ingest_timeout_ms`; ServiceError (503) if it fails or takes longer."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self._send_all, events), self._timeout_s + 0.5)
        except TimeoutError:
            raise self._unavailable(f"no acknowledgement within {self._timeout_s:g} s") from None

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
