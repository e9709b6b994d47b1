"""Signals topic -> Redis: pipelined absolute writes, offsets committed only after the write."""

from __future__ import annotations

import threading
from typing import Any

from lambdastack.keys import KeyLayout
from lambdastack.settings import Settings
from speed.signals import Write, decode_count, decode_key, writes_for


class RedisSignalWriter:
    """Applies Writes in one pipeline per batch, with a TTL on every key touched."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._client: Any = None

    def open(self) -> RedisSignalWriter:
        import redis

        r = self._settings.redis
        self._client = redis.Redis(host=r.host, port=r.port, db=r.db, socket_timeout=5)
        self._client.ping()
        return self

    def apply(self, writes: list[Write]) -> None:
        ttl = self._settings.redis.signal_ttl_s
        pipe = self._client.pipeline(transaction=False)
        touched = set()
        for w in writes:
            if w.op == "hset":
                pipe.hset(w.key, w.member, int(w.value or 0))
            elif w.op == "hdel":
                pipe.hdel(w.key, w.member)
            elif w.op == "zadd":
                pipe.zadd(w.key, {w.member: float(w.value or 0)})
            elif w.op == "zrem":
                pipe.zrem(w.key, w.member)
            touched.add(w.key)
        for key in touched:
            pipe.expire(key, ttl)
        pipe.execute()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class SignalLoader:
    """Consumes the signals topic and upserts Redis until `stop()`."""

    def __init__(self, settings: Settings, writer: RedisSignalWriter | None = None):
        self._settings = settings
        self._writer = writer or RedisSignalWriter(settings)
        self._layout = KeyLayout(settings.redis.key_prefix)
        self._stop = threading.Event()
        self.records = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            self._settings.topics.signals,
            bootstrap_servers=self._settings.kafka.bootstrap,
            group_id=self._settings.speed.loader_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="lambdastack-redis-loader",
            fetch_max_wait_ms=20,
        )
        self._writer.open()
        try:
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=50, max_records=5000)
                writes: list[Write] = []
                for records in batches.values():
                    for rec in records:
                        if rec.key is None:
                            continue
                        writes += writes_for(decode_key(rec.key), decode_count(rec.value), self._layout)
                        self.records += 1
                if writes:
                    self._writer.apply(writes)
                if batches:
                    consumer.commit()
        finally:
            consumer.close()
            self._writer.close()
