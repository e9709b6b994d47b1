"""Event producer on kafka-python: idempotent, acks=all, keyed by user_id."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from lambdastack.events import Event, decode, describe_errors
from lambdastack.settings import Settings


class EventProducer:
    """Sends wire events to the events topic; invalid input goes to the dead-letter topic."""

    def __init__(self, settings: Settings, topic: str | None = None):
        self._settings = settings
        self.topic = topic or settings.topics.events
        self._producer: Any = None

    def open(self) -> EventProducer:
        from kafka import KafkaProducer

        self._producer = KafkaProducer(
            bootstrap_servers=self._settings.kafka.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            batch_size=64 * 1024,
            compression_type=None,
            client_id="lambdastack-producer",
        )
        return self

    def __enter__(self) -> EventProducer:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, event: Event) -> Any:
        """The record's timestamp is the event time (never ahead of this clock): the speed job's
        event-time watermarks come from it."""
        return self._producer.send(
            self.topic,
            key=event.user_id.encode(),
            value=event.to_json(),
            timestamp_ms=record_timestamp(event.event_time_ms, int(time.time() * 1000)),
        )

    def send_raw(self, key: bytes | None, payload: bytes) -> Any:
        """Send bytes as they are (for tests of the dead-letter path)."""
        return self._producer.send(self.topic, key=key, value=payload)

    def dead_letter(self, payload: bytes, reason: str, source: str) -> Any:
        record = {"reason": reason, "payload": payload.decode(errors="replace"), "source": source}
        return self._producer.send(self._settings.topics.dead_letter, value=json.dumps(record).encode())

    def flush(self) -> None:
        self._producer.flush()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush()
            self._producer.close()
            self._producer = None


def record_timestamp(event_time_ms: int, now_ms: int) -> int:
    """The Kafka timestamp of an event: its event time, clamped to now, so that one event from a
    clock running ahead cannot push the watermark past every other event."""
    return min(event_time_ms, now_ms)


def paced(items: Iterable[Any], rate: float) -> Iterator[Any]:
    """Yield items at `rate` per second (no pacing when rate <= 0)."""
    if rate <= 0:
        yield from items
        return
    start = time.monotonic()
    for n, item in enumerate(items):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield item


def send_lines(producer: EventProducer, lines: Iterable[bytes], rate: float, source: str) -> tuple[int, int]:
    """Validate and send JSONL lines; invalid ones go to the dead-letter topic. Returns (sent, dead)."""
    sent = dead = 0
    now = int(time.time() * 1000)
    for lineno, line in paced(enumerate(lines, start=1), rate):
        line = line.strip()
        if not line:
            continue
        event, errors = decode(line, now_ms=now)
        if event is None:
            producer.dead_letter(line, describe_errors(errors), f"{source}:{lineno}")
            dead += 1
        else:
            producer.send(event)
            sent += 1
    producer.flush()
    return sent, dead
