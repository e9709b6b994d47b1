"""Prometheus metrics of one app instance (its own registry: no import-time globals)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lambdastack.speed_health import SpeedHealth

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
AGE_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.latency = Histogram(
            "lambdastack_request_seconds",
            "Request latency by route",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.responses = Counter(
            "lambdastack_responses_total", "Responses by route and status", ["route", "status"], registry=r
        )
        self.items = Counter(
            "lambdastack_feed_items_total",
            "Feed items served, by source that proposed them",
            ["source", "variant"],
            registry=r,
        )
        self.feeds = Counter(
            "lambdastack_feed_requests_total",
            "Feeds served, by A/B variant and model version",
            ["variant", "model_version"],
            registry=r,
        )
        self.degraded = Counter(
            "lambdastack_degraded_responses_total",
            "Responses served without the speed view or without a batch version",
            ["route"],
            registry=r,
        )
        self.live_reads = Counter(
            "lambdastack_feed_live_reads_total",
            "Feed reads of the speed counts by source: `total` (the as-of's live total) or `buckets` "
            "(no total for the as-of: at most serving.speed_buckets_max buckets summed)",
            ["source"],
            registry=r,
        )
        self.versions = Gauge(
            "lambdastack_loaded_version_info",
            "Loaded versions (1) by role: view, model, challenger",
            ["role", "version"],
            registry=r,
        )
        self.swaps = Counter("lambdastack_version_swaps_total", "Snapshots swapped in", registry=r)
        self.as_of = Gauge(
            "lambdastack_batch_as_of_timestamp_seconds",
            "As-of of the batch version served (epoch s; 0 while none is): the newest instant its "
            "views cover",
            registry=r,
        )
        self._version_loads(r)
        self._speed_health(r)
        self.signal_age = Histogram(
            "lambdastack_feed_signal_age_seconds",
            "Age of the freshest speed signal a feed used",
            buckets=AGE_BUCKETS,
            registry=r,
        )

    def _version_loads(self, r: CollectorRegistry) -> None:
        self.load_failures = Counter(
            "lambdastack_version_load_failures_total",
            "Loads of the version CURRENT names (views or model) that failed; the version held stays "
            "in use and the load is retried with backoff (lambdastack.follower)",
            registry=r,
        )
        self.load_failing = Gauge(
            "lambdastack_version_load_failing",
            "1 for the version CURRENT names while it cannot be loaded (an older one is served)",
            ["version"],
            registry=r,
        )
        self._failures_seen = 0

    def _speed_health(self, r: CollectorRegistry) -> None:
        self.speed_ok = Gauge(
            "lambdastack_speed_ok",
            "1 while the speed layer's heartbeat is fresh, its Flink job answers, and its loader "
            "neither lags nor replays (lambdastack.speed_health); read at each scrape",
            registry=r,
        )
        self.speed_heartbeat_age = Gauge(
            "lambdastack_speed_heartbeat_age_seconds",
            "Age of the speed loader's heartbeat (-1: none)",
            registry=r,
        )
        self.speed_job_running = Gauge(
            "lambdastack_speed_job_running",
            "1 while the speed loader's heartbeat is fresh and says the Flink job answered RUNNING "
            "within speed.stale_after_s (lambdastack.speed_health); read at each scrape",
            registry=r,
        )
        self.speed_lag = Gauge(
            "lambdastack_speed_loader_lag_records",
            "Records of the signals and users topics the loader has not loaded yet (-1: unknown)",
            registry=r,
        )

    def speed_state(self, health: SpeedHealth) -> None:
        self.speed_ok.set(int(health.ok))
        self.speed_job_running.set(int(health.job_running))
        age = health.beat_age_ms
        self.speed_heartbeat_age.set(-1 if age is None else age / 1000)
        self.speed_lag.set(-1 if health.lag is None else health.lag)

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once (prometheus_client's lookup takes a lock)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def loaded(
        self, view: str | None, model: str | None, challenger: str | None, as_of_ms: int | None
    ) -> None:
        """The versions a swap put in service, and the as-of of the view's (None: no view)."""
        self.versions.clear()
        self.as_of.set(0 if as_of_ms is None else as_of_ms / 1000)
        for role, version in (("view", view), ("model", model), ("challenger", challenger)):
            if version is not None:
                self.versions.labels(role, version).set(1)
        self.swaps.inc()

    def load_state(self, failures: int, failing: str | None) -> None:
        """The follower's failed loads so far and the version that fails now (None: none)."""
        if failures > self._failures_seen:
            self.load_failures.inc(failures - self._failures_seen)
            self._failures_seen = failures
        self.load_failing.clear()
        if failing is not None:
            self.load_failing.labels(failing).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
