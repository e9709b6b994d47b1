"""Typed settings loaded from conf/lambdastack.yaml with environment overrides.

Overrides are `LAMBDASTACK_<SECTION>__<KEY>=value` (values parsed as YAML scalars).
`LAMBDASTACK_CONFIG` points at another file. Unknown keys are errors, in the file and in the
environment. Relative paths are resolved against the project root (the parent of `conf/`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from lambdastack.errors import ConfigError

ENV_PREFIX = "LAMBDASTACK_"
CONFIG_ENV = "LAMBDASTACK_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StackSettings(_Section):
    state_dir: Path
    ready_timeout_s: float = Field(60, gt=0)


class KafkaSettings(_Section):
    version: str
    host: str = "127.0.0.1"
    port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    heap: str = "512m"
    jvm_opts: str = ""  # more JVM options of the local broker (`stack up`)
    partitions: int = Field(2, ge=1)
    # a record the broker has not acknowledged this long after its send is failed (`produce`
    # exits non-zero naming it); kafka-python's own default is 2 minutes
    delivery_timeout_ms: int = Field(30_000, ge=1000)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


class RedisSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(6379, ge=1, le=65535)
    db: int = Field(0, ge=0)
    signal_ttl_s: int = Field(172800, gt=0)
    socket_timeout_ms: int = Field(50, gt=0)
    loader_socket_timeout_ms: int = Field(5000, gt=0)  # the loader's writes (speed/loader.py)
    key_prefix: str = Field("ls", min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")


class TopicSettings(_Section):
    events: str
    dead_letter: str
    signals: str
    users: str = "lambdastack.users"


class DataSettings(_Section):
    master_dir: Path
    catalogue_dir: Path
    views_dir: Path
    movielens_dir: Path


class BatchSettings(_Section):
    spark_master: str = "local[2]"
    schedule: str = Field("0 2 * * *", pattern=r"^\S+ \S+ \S+ \S+ \S+$")
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(4, ge=1)
    jvm_opts: str = ""  # JVM options of the Spark driver and executors
    adaptive: bool = True  # Spark's adaptive query execution (spark.sql.adaptive.enabled)
    bucket_s: int = Field(3600, gt=0)
    popular_n: int = Field(500, gt=0)
    keep_versions: int = Field(5, ge=1)
    neighbours_n: int = Field(100, gt=0)
    # positions apart within a user's events that still co-visit (batch/neighbours.py; at most 25
    # keeps its integer sums exact in 64 bits)
    covisit_window: int = Field(20, ge=1, le=25)
    recent_items_n: int = Field(50, ge=1)  # newest interactions per user in user_history `recent`
    candidates_n: int = Field(100, gt=0)
    clusters: int = Field(8, gt=0)
    train_fraction: float = Field(0.2, gt=0, lt=1)
    train_max_queries: int = Field(10_000, gt=0)
    train_negatives: int = Field(4, ge=1)


class SpeedSettings(_Section):
    flink_version: str
    kafka_connector_version: str
    parallelism: int = Field(1, ge=1)
    bundle_time_ms: int = Field(50, gt=0)
    bundle_size: int = Field(1000, gt=0)
    buffer_timeout_ms: int = Field(20, ge=0)
    startup_mode: str = "earliest-offset"
    state_ttl_s: int = Field(172800, gt=0)
    dedupe_ttl_s: int = Field(300, gt=0)  # an event id is remembered this long after it arrived
    consumer_group: str = "lambdastack-speed"
    loader_group: str = "lambdastack-redis-loader"
    # fault tolerance (speed/job.py): empty dirs mean {state_dir}/flink/checkpoints|savepoints
    checkpoint_interval_ms: int = Field(5000, ge=100)
    checkpoint_dir: Path | None = None
    savepoint_dir: Path | None = None
    savepoint_on_stop: bool = True
    restart_strategy: Literal["fixed-delay", "exponential-delay"] = "exponential-delay"
    restart_attempts: int = Field(20, ge=0)  # 0 with fixed-delay: the first failure ends the job
    restart_delay_ms: int = Field(1000, ge=0)
    restart_max_delay_ms: int = Field(30000, ge=0)
    mini_batch_latency_ms: int = Field(0, ge=0)
    mini_batch_size: int = Field(5000, gt=0)
    # the standalone Flink cluster (lambdastack/stack/flink.py)
    cluster_host: str = "127.0.0.1"
    cluster_rpc_port: int = Field(6123, ge=1, le=65535)
    cluster_rest_port: int = Field(8081, ge=1, le=65535)
    cluster_slots: int = Field(2, ge=1)
    jobmanager_memory: str = "1024m"
    taskmanager_memory: str = "1536m"
    heartbeat_timeout_ms: int = Field(10000, ge=1000)
    # the archiver (speed/archive.py): validated events -> the master dataset, exactly once
    archive_enabled: bool = True
    archive_roll_rows: int = Field(200_000, gt=0)
    archive_roll_s: float = Field(60.0, gt=0)
    # freshness histogram (speed/metrics.py) on this port; 0 turns the exporter off
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9249, ge=0, le=65535)
    flink_metrics_port: int = Field(9250, ge=0, le=65535)  # Flink's Prometheus reporter; 0: off
    # event time, windows, trending and drift (speed/sql.py, speed/trending.py, speed/drift.py)
    watermark_delay_ms: int = Field(2000, ge=0)
    source_idle_timeout_ms: int = Field(5000, gt=0)
    watermark_interval_ms: int = Field(200, gt=0)
    minute_retention_s: int = Field(4200, ge=3600)
    minute_state_ttl_s: int = Field(7200, gt=0)
    baseline_check_s: float = Field(5.0, gt=0)
    since_keep_s: float = Field(300.0, ge=0)  # the previous as-of's live total is kept (and fed) this long
    job_unreachable_s: float = Field(8.0, gt=0)
    # the loader through Redis faults (speed/store_epoch.py): retry waits, and how often it looks
    # whether Redis still holds the speed view (the epoch key)
    store_retry_first_s: float = Field(0.2, gt=0)
    store_retry_max_s: float = Field(5.0, gt=0)
    epoch_check_s: float = Field(1.0, gt=0)
    # the loader replaces a Kafka consumer that held no partition, or waited for a commit's
    # answer, this long (speed/group_watch.py)
    loader_stall_s: float = Field(30.0, gt=0)
    # a reader (the API's /ready and metrics, `stack status`) calls the speed layer unhealthy when
    # its heartbeat or the Flink job's last answer is older than this, or the loader lags more
    stale_after_s: float = Field(8.0, gt=0)
    max_lag_records: int = Field(100_000, ge=0)
    trending_window_s: int = Field(600, gt=0)
    trending_slide_s: int = Field(60, gt=0)
    trending_min_users: int = Field(5, ge=1)
    trending_min_z: float = Field(3.0, ge=0)
    trending_min_expected: float = Field(1.0, gt=0)
    trending_top_n: int = Field(100, ge=1)
    trending_ttl_s: int = Field(7200, gt=0)
    drift_window_s: int = Field(300, gt=0)
    drift_sample_per_mille: int = Field(100, ge=0, le=1000)
    drift_psi_alert: float = Field(0.2, gt=0)
    drift_min_events: int = Field(200, ge=1)
    # user state and per-event scoring (speed/users.py): its own source and consumer group
    users_group: str = "lambdastack-speed-users"
    user_recent_n: int = Field(20, ge=1)  # interactions in {p}:user:{id} `recent`
    user_window_n: int = Field(100, ge=1)  # interactions merged with the batch profile to score
    seen_max: int = Field(1000, ge=1)  # newest items a user interacted with in {p}:user:{id}:seen
    fresh_n: int = Field(20, ge=1)  # candidates in `fresh`
    fresh_seeds: int = Field(3, ge=1)  # newest engaged items whose neighbours are candidates
    fresh_neighbours_n: int = Field(20, ge=1)  # neighbours of each seed scored (one ONNX run per event)
    version_check_s: float = Field(1.0, gt=0)  # how often the scoring UDF looks at CURRENT
    users_flush_ms: int = Field(100, ge=1)  # the users sink keeps the newest record per key this long
    users_flush_rows: int = Field(2000, ge=1)  # ... or until it holds this many keys
    score_events: bool = True  # per-event ONNX scoring (fresh candidates); off: `recent` and seen only
    jvm_opts: str = "-XX:TieredStopAtLevel=1"  # JVM options of the job's JVM (local) / the cluster's
    local_heap_mb: int = Field(1024, ge=256)  # the local mini-cluster JVM's heap, committed at start
    signals_flush_ms: int = Field(50, ge=1)  # the signals sink keeps the newest record per key this long
    signals_flush_rows: int = Field(5000, ge=1)  # ... or until it holds this many keys


PLACEHOLDER_MARKERS = ("change-me", "changeme", "placeholder", "example", "secret")
API_KEY_MIN_LEN = 24


class ApiKeySettings(_Section):
    """One API key: who holds it (`name`), the key itself, and what it may do (`scopes`)."""

    name: str = Field(min_length=1)
    key: SecretStr
    scopes: tuple[str, ...] = ()

    def placeholder(self) -> bool:
        value = self.key.get_secret_value()
        return len(value) < API_KEY_MIN_LEN or any(m in value.lower() for m in PLACEHOLDER_MARKERS)


def loopback(host: str) -> bool:
    """Whether `host` reaches this machine only: localhost or a loopback address (a name that
    DNS resolves is not trusted to stay loopback)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ABSettings(_Section):
    """Split feed traffic between the current version's model and a challenger version's."""

    enabled: bool = False
    challenger_version: str | None = Field(default=None, pattern=r"^v\d{6}$")
    share: float = Field(default=0.1, ge=0, le=1)  # users (by a hash of their id) ranked by the challenger
    salt: str = "ab1"  # change to reshuffle who falls into which variant


class ServingSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # POST /v1/events answers 503 when Kafka has not acknowledged every event within this
    ingest_timeout_ms: int = Field(5000, ge=100, le=60_000)
    environment: Literal["development", "production"] = "development"
    feed_k_default: int = Field(20, ge=1)
    feed_k_max: int = Field(200, ge=1)
    speed_buckets_max: int = Field(48, ge=1)  # the fallback's bound: buckets summed without a live total
    candidates_max: int = Field(60, ge=1)
    speed_movers_n: int = Field(20, ge=1)
    trending_n: int = Field(20, ge=1)
    knn_recent_n: int = Field(20, ge=0)  # newest interactions whose neighbour similarities are summed
    knn_decay: float = Field(0.9, gt=0, le=1)  # each older interaction's weight: x this
    knn_candidates_n: int = Field(100, ge=0)  # best-scored neighbours added as candidates
    knn_session_s: int = Field(1800, ge=0)  # the session features: interactions this recent
    als_candidates_n: int = Field(10, ge=0)  # a known user's best items by ALS score added as candidates
    cold_start_events: int = Field(3, ge=0)
    genre_cap: float = Field(0.4, gt=0, le=1)
    user_cache_max: int = Field(50_000, ge=1)
    predict_instances_max: int = Field(1000, ge=1)
    max_body_bytes: int = Field(65536, ge=1024)
    cors_origins: tuple[str, ...] = ()
    api_keys: tuple[ApiKeySettings, ...] = ()
    # the API key (by name, one of api_keys with events:write) the explorer page at /ui posts its
    # view / like / skip events with; it is handed to every browser that opens /ui, so give the
    # page a key of its own; None: the page shows feeds but cannot post events
    ui_key: str | None = None
    access_log: bool = True
    reload_interval_s: float = Field(1.0, gt=0)
    ab: ABSettings = Field(default_factory=ABSettings)
    # what a hostile or broken client can hold (serving/connections.py, serving/server.py)
    limit_concurrency: int = Field(512, ge=1)  # open connections or running requests, beyond: 503
    timeout_keep_alive_s: int = Field(5, ge=1)  # an idle keep-alive connection is closed after this
    header_timeout_s: float = Field(10.0, gt=0)  # a request's header must arrive within this, else 408
    max_header_bytes: int = Field(16384, ge=1024)  # a longer request line + header gets 431

    @model_validator(mode="after")
    def _no_placeholder_keys_outside_development(self) -> ServingSettings:
        weak = [k.name for k in self.api_keys if k.placeholder()]
        if weak and self.environment != "development":
            raise ValueError(
                f"api_keys {weak} are placeholders or shorter than {API_KEY_MIN_LEN} characters; "
                f"set real keys when environment is {self.environment}"
            )
        if weak and not loopback(self.host):
            raise ValueError(
                f"api_keys {weak} are placeholders or shorter than {API_KEY_MIN_LEN} characters, "
                f"and host {self.host} is reachable from other machines; set real keys, or bind "
                "the API to loopback (127.0.0.1)"
            )
        if self.feed_k_default > self.feed_k_max:
            raise ValueError("feed_k_default must not exceed feed_k_max")
        if self.ui_key is not None:
            named = [k for k in self.api_keys if k.name == self.ui_key]
            if not named or "events:write" not in named[0].scopes:
                raise ValueError(
                    f"ui_key {self.ui_key!r} must name one of api_keys that has the scope events:write"
                )
        return self


class PrometheusSettings(_Section):
    """Debian's prometheus that `up` starts (tools/stack/prometheus.py), and its alert thresholds."""

    host: str = "127.0.0.1"
    port: int = Field(9090, ge=1, le=65535)
    scrape_interval_s: float = Field(15.0, gt=0)  # and the rules' evaluation interval
    retention: str = Field("7d", pattern=r"^\d+[smhdwy]$")  # of its time series database
    freshness_p99_s: float = Field(1.0, gt=0)  # alert: the speed view's freshness p99 above this
    degraded_ratio_max: float = Field(0.01, gt=0, lt=1)  # alert: degraded feeds over feeds served
    error_ratio_max: float = Field(0.001, gt=0, lt=1)  # alert: 5xx responses over all responses

    @model_validator(mode="after")
    def _loopback_only(self) -> PrometheusSettings:
        if not loopback(self.host):
            raise ValueError(
                f"host {self.host} is reachable from other machines and Prometheus has no "
                "authentication; bind it to loopback (127.0.0.1)"
            )
        return self


class DoctorSettings(_Section):
    """`lambdastack doctor` (tools/doctor): how long a probe may take, and what it calls too little disk."""

    probe_timeout_s: float = Field(default=2.0, gt=0)  # every service's answer; a later one is a failed check
    min_free_disk_mb: int = Field(default=1024, ge=0)  # less free on the state directory's disk: a problem


class Settings(_Section):
    root: Path
    stack: StackSettings
    kafka: KafkaSettings
    redis: RedisSettings
    topics: TopicSettings
    data: DataSettings
    batch: BatchSettings
    speed: SpeedSettings
    serving: ServingSettings
    prometheus: PrometheusSettings
    doctor: DoctorSettings = Field(default_factory=DoctorSettings)

    def path(self, p: Path) -> Path:
        """Resolve a configured path against the project root."""
        return p if p.is_absolute() else (self.root / p).resolve()

    @property
    def state_dir(self) -> Path:
        return self.path(self.stack.state_dir)


def default_config_path() -> Path:
    """The config file: $LAMBDASTACK_CONFIG, else ./conf/lambdastack.yaml, else the repo's."""
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    local = Path.cwd() / "conf" / "lambdastack.yaml"
    if local.exists():
        return local
    return Path(__file__).resolve().parents[1] / "conf" / "lambdastack.yaml"


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    sections = set(Settings.model_fields) - {"root"}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or parts[0] not in sections:
            raise ConfigError(
                f"environment variable {name} does not name a setting "
                f"(expected {ENV_PREFIX}<SECTION>__<KEY> with SECTION one of {sorted(sections)})"
            )
        section, key = parts
        raw.setdefault(section, {})[key] = yaml.safe_load(value) if value != "" else ""
    return raw


def _describe(err: ValidationError, source: Path) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        reason = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{where}: {reason}")
    return f"invalid configuration in {source}: " + "; ".join(lines)


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load, override from the environment, and validate the settings."""
    source = path or default_config_path()
    try:
        raw = yaml.safe_load(source.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"configuration file {source} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"configuration file {source} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration file {source} must hold a mapping of sections")
    raw = _apply_env(raw, os.environ if environ is None else environ)
    raw["root"] = source.resolve().parent.parent
    try:
        return Settings.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_describe(e, source)) from None
