"""Event producer on kafka-python: idempotent, acks=all, keyed by user_id.

No send is fire-and-forget: every record's delivery is watched, and a record the broker never
acknowledged is listed in `failures` (with its source and the reason) once `flush` returns, so a
caller can say which records were lost instead of counting them as sent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from lambdastack.errors import ServiceError
from lambdastack.events import Event, decode, describe_errors
from lambdastack.settings import Settings

SEND_BLOCK_MS = 10_000  # how long a send may wait for broker metadata before it counts as failed


class EventProducer:
    """Sends wire events to the events topic; invalid input goes to the dead-letter topic."""

    def __init__(self, settings: Settings, topic: str | None = None, deadline_ms: int | None = None):
        """`deadline_ms`: how long a send may wait for its acknowledgement in all (blocking for
        metadata included); `kafka.delivery_timeout_ms` when not given."""
        self._settings = settings
        self.topic = topic or settings.topics.events
        self._deadline_ms = deadline_ms or settings.kafka.delivery_timeout_ms
        self._producer: Any = None
        self.failures: list[tuple[str, str]] = []  # (source, reason) of every record not delivered

    def open(self) -> EventProducer:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            self._producer = KafkaProducer(
                bootstrap_servers=self._settings.kafka.bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                batch_size=64 * 1024,
                compression_type=None,
                client_id="lambdastack-producer",
                max_block_ms=min(SEND_BLOCK_MS, self._deadline_ms),
                # a request to a broker that does not answer (stopped, partitioned) fails after
                # this, and the record once its whole deadline passed: never a hang
                request_timeout_ms=max(1000, self._deadline_ms // 2),
                delivery_timeout_ms=self._deadline_ms,
                bootstrap_timeout_ms=self._deadline_ms,
            )
        except KafkaError as e:
            raise ServiceError(
                f"cannot reach Kafka at {self._settings.kafka.bootstrap} ({type(e).__name__}); "
                "is it running? (`lambdastack stack up`)"
            ) from e
        return self

    def _watched(self, send: Any, source: str) -> Any:
        """Send, and note the record in `failures` if it is never acknowledged."""
        from kafka.errors import KafkaError

        try:
            future = send()
        except (KafkaError, ValueError) as e:  # kafka-python refuses some records with ValueError
            self.failures.append((source, f"{type(e).__name__}: {e}"))
            return None
        future.add_errback(lambda e: self.failures.append((source, f"{type(e).__name__}: {e}")))
        return future

    def __enter__(self) -> EventProducer:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, event: Event, source: str = "") -> Any:
        """The record's timestamp is the event time (never ahead of this clock): the speed job's
        event-time watermarks come from it."""
        return self._watched(
            lambda: self._producer.send(
                self.topic,
                key=event.user_id.encode(),
                value=event.to_json(),
                timestamp_ms=record_timestamp(event.event_time_ms, int(time.time() * 1000)),
            ),
            source or f"event {event.event_id}",
        )

    def send_raw(self, key: bytes | None, payload: bytes) -> Any:
        """Send bytes as they are (for tests of the dead-letter path)."""
        return self._watched(lambda: self._producer.send(self.topic, key=key, value=payload), "raw")

    def dead_letter(self, payload: bytes, reason: str, source: str) -> Any:
        record = {"reason": reason, "payload": payload.decode(errors="replace"), "source": source}
        topic = self._settings.topics.dead_letter
        return self._watched(lambda: self._producer.send(topic, value=json.dumps(record).encode()), source)

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait for every send's outcome (at most `timeout_s`: kafka-python raises
        KafkaTimeoutError after it)."""
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Flush and close (waiting at most `timeout_s` when given: a producer given up on)."""
        if self._producer is not None:
            if timeout_s is None:
                self._producer.flush()
            self._producer.close(timeout=timeout_s)
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
    """Validate and send JSONL lines; invalid ones go to the dead-letter topic. Returns (sent,
    dead) as attempted; `producer.failures` names the lines (`source:line`) never delivered."""
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
            producer.send(event, f"{source}:{lineno}")
            sent += 1
    producer.flush()
    return sent, dead
