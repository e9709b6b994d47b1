"""The metrics `speed run` exports to Prometheus: the freshness of the speed view, the records
loaded and archived, the loader's store faults, and the newest drift report.

A signal record (absolute count per item x bucket x type) is derived from many events. Its
freshness is measured from the newest event time it covers (`max_event_ms` in the record value,
label since="event_time") to the moment its Redis write returned. While the signals do not carry
that field, the record's Kafka timestamp (when Flink emitted it) is used instead, labelled
since="signal_emit": the Flink-to-Redis part of the path. `lambdastack bench speed` measures the
whole path, producer send to a readable Redis value, with a probe.

The drift gauges hold the newest report the loader computed (the one it writes to `{p}:drift`):
PSI per feature and the alert flag, replaced as a whole like the hash.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from lambdastack.errors import ServiceError
from speed.drift import DriftReport

# seconds; dense where the targets are (p99 <= 250 ms / 500 ms)
BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)


def covered_time(value: bytes | None, kafka_timestamp_ms: int) -> tuple[str, int]:
    """(label, epoch ms) the freshness of one signal record is measured from."""
    if value:
        try:
            newest = orjson.loads(value).get("max_event_ms")
        except (ValueError, AttributeError):
            newest = None
        if isinstance(newest, int):
            return "event_time", newest
    return "signal_emit", kafka_timestamp_ms


def freshness_seconds(records: Sequence[Any], written_ms: int) -> list[tuple[str, float]]:
    """(label, seconds) per record with a key, from Kafka records written to Redis at `written_ms`."""
    out = []
    for rec in records:
        if rec.key is None:
            continue
        label, since = covered_time(rec.value, rec.timestamp)
        out.append((label, max(0, written_ms - since) / 1000.0))
    return out


class DriftGauges:
    """Prometheus gauges of the newest drift report, on a registry the caller exports."""

    def __init__(self, registry: Any):
        from prometheus_client import Gauge

        self.psi = Gauge(
            "lambdastack_speed_drift_psi",
            "PSI of a model feature against the training baseline",
            ["feature"],
            registry=registry,
        )
        self.alert = Gauge(
            "lambdastack_speed_drift_alert",
            "1 when a feature's PSI is above speed.drift_psi_alert",
            registry=registry,
        )

    def observe(self, r: DriftReport) -> None:
        """The loader's drift hook: the gauges show this report only (a feature it lacks goes)."""
        self.psi.clear()
        for feature, value in r.psi.items():
            self.psi.labels(feature).set(value)
        self.alert.set(int(r.alert))


class LoaderCollector:
    """The loader's fault counters, read when Prometheus scrapes: store failures retried, replays
    from the earliest offset, and whether one is running (speed.store_epoch), consumers replaced
    (speed.group_watch)."""

    def __init__(self, loader: Any):
        self._loader = loader

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield CounterMetricFamily(
            "lambdastack_loader_store_errors",
            "Speed-store (Redis) calls of the loader that failed and were retried",
            value=self._loader.store_errors,
        )
        yield CounterMetricFamily(
            "lambdastack_loader_replays",
            "Replays of the loader topics from the earliest offset (first start, Redis lost the view)",
            value=self._loader.replays,
        )
        yield CounterMetricFamily(
            "lambdastack_loader_skipped_records",
            "Records of the signals and users topics that were not such records, skipped with their reason",
            value=self._loader.skipped,
        )
        yield CounterMetricFamily(
            "lambdastack_loader_consumer_restarts",
            "Kafka consumers the loader replaced because their group stopped answering",
            value=self._loader.consumer_restarts,
        )
        yield GaugeMetricFamily(
            "lambdastack_loader_replaying",
            "1 while the loader rebuilds the speed view by a replay",
            value=int(self._loader.replaying),
        )


class FreshnessMetrics:
    """The speed process's metrics and their HTTP exporter (a registry of its own; started by
    `start()`): freshness histogram, record counters, drift gauges."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.freshness = Histogram(
            "lambdastack_speed_freshness_seconds",
            "Time from the newest event (or Flink's emission) of a signal record to its Redis write",
            ["since"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.records = Counter(
            "lambdastack_speed_signal_records", "Signal records written to Redis", registry=self.registry
        )
        self.archived = Counter(
            "lambdastack_speed_archived_events",
            "Valid events archived to the master dataset",
            registry=self.registry,
        )
        self.drift = DriftGauges(self.registry)
        self._server: Any = None

    def start(self, host: str, port: int) -> FreshnessMetrics:
        from prometheus_client import start_http_server

        try:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise ServiceError(f"speed.metrics_port: cannot serve metrics on {host}:{port} ({e})") from None
        return self

    def observe(self, records: Sequence[Any]) -> None:
        """The loader's hook: called with a batch of signal records once they are in Redis."""
        now_ms = int(time.time() * 1000)
        for label, seconds in freshness_seconds(records, now_ms):
            self.freshness.labels(label).observe(seconds)
            self.records.inc()

    def watch(self, loader: Any) -> None:
        """Export the loader's fault counters (LoaderCollector)."""
        self.registry.register(LoaderCollector(loader))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
