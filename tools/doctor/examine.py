"""`lambdastack doctor`'s checks in screen order: the probes run side by side
(tools.doctor.probes), then each verdict (tools.doctor.checks) reads what they found."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lambdastack.settings import Settings
from lambdastack.speed_health import DriftReport, drift_report, judge
from lambdastack.versions import VersionLayout
from tools.doctor import checks, probes
from tools.doctor.checks import Check
from tools.doctor.probes import Outcome
from tools.stack.cron import longest_gap_s
from tools.stack.process import ManagedProcess


def consumers(s: Settings) -> dict[str, tuple[str, tuple[str, ...]]]:
    """label -> (consumer group, the topics it reads) of the platform's Kafka consumers."""
    sp, t = s.speed, s.topics
    return {
        "speed": (sp.consumer_group, (t.events,)),
        "users": (sp.users_group, (t.events,)),
        "loader": (sp.loader_group, (t.signals, t.users)),
    }


def examine(s: Settings) -> list[Check]:
    """Every check of the stack these settings describe."""
    from speed.control import current_run

    run = current_run(s)
    groups = {g: topics for g, topics in consumers(s).values()}
    found = probes.gather(
        {
            "kafka": lambda: probes.kafka(s),
            "groups": lambda: probes.committed(s, groups),
            "redis": lambda: probes.redis(s),
            "api": lambda: probes.api(s),
            "restarts": lambda: probes.restarts(s, run[1]) if run else None,
            "disk": lambda: probes.disk(s.state_dir, s.doctor.probe_timeout_s / 2),
        },
        s.doctor.probe_timeout_s + 0.5,
    )
    now_ms = int(time.time() * 1000)
    parts: list[tuple[str, Callable[[], Check | list[Check]]]] = [
        ("services", lambda: _services(s, found)),
        ("speed job", lambda: _speed_job(s, run, found, now_ms)),
        ("lag", lambda: _lags(s, found["kafka"], found["groups"])),
        ("signal", lambda: _signal(s, found["kafka"], now_ms)),
        ("batch", lambda: _batch(s, now_ms)),
        ("model", lambda: _model(s, found["api"])),
        ("drift", lambda: checks.drift(_drift(found["redis"]), s.speed.drift_psi_alert, now_ms)),
        ("disk", lambda: _disk(s, found["disk"])),
    ]
    out: list[Check] = []
    for name, build in parts:
        try:
            got = build()
        except Exception as e:  # noqa: BLE001 - a check that cannot be made is a failed check
            why = probes.one_line(e)
            got = Check(name, "fail", f"not known: {why}", f"The {name} check could not be made: {why}.")
        out.extend(got if isinstance(got, list) else [got])
    return out


def _log(s: Settings, name: str) -> str:
    return str(ManagedProcess(name, s.state_dir).log_file)


def _services(s: Settings, found: dict[str, Outcome]) -> list[Check]:
    k, r, a = found["kafka"], found["redis"], found["api"]
    kafka_v = None if k.error else f"kafka {k.value['version']}, {k.value['brokers']} broker(s)"
    redis_v = None if r.error else f"redis {r.value['version']}, {checks.size(r.value['memory'])} used"
    api_v = None if a.error else f"lambdastack {a.value.get('code_version')}"
    start = "start it with `lambdastack stack up` (its log: {})"
    return [
        checks.service("Kafka", s.kafka.bootstrap, kafka_v, k.error, start.format(_log(s, "kafka"))),
        checks.service(
            "Redis", f"{s.redis.host}:{s.redis.port}", redis_v, r.error, start.format(_log(s, "redis"))
        ),
        checks.service(
            "API",
            f"{s.serving.host}:{s.serving.port}",
            api_v,
            a.error,
            f"start it with `lambdastack up` or `lambdastack serve` (its log: {_log(s, 'api')})",
        ),
    ]


def _speed_job(s: Settings, run: tuple[int, str] | None, found: dict[str, Outcome], now_ms: int) -> Check:
    r, restarts = found["redis"], found["restarts"]
    health = (
        None if r.error else judge(r.value["beat"], now_ms, s.speed.stale_after_s, s.speed.max_lag_records)
    )
    count = restarts.error or ("speed.flink_metrics_port is 0" if restarts.value is None else restarts.value)
    return checks.speed_job(run, health, count, _log(s, "speed"), probes.flink_version())


def _lags(s: Settings, kafka: Outcome, groups: Outcome) -> list[Check]:
    out = []
    for label, (group, topics) in consumers(s).items():
        if kafka.error or groups.error:
            why = "Kafka does not answer" if kafka.error else groups.error
            out.append(Check(f"lag {label}", "skip", f"{group}: not known ({why})"))
            continue
        n = probes.behind(kafka.value["end"], groups.value.get(group) or None, topics)
        out.append(checks.lag(label, group, n, s.speed.max_lag_records))
    if s.speed.archive_enabled:
        out.append(_archiver(s, kafka))
    return out


def _archiver(s: Settings, kafka: Outcome) -> Check:
    """The archiver keeps no group: its progress is the offsets in the master dataset's file names."""
    from speed.archive import next_offsets

    where = "master dataset"
    if kafka.error:
        return Check("lag archiver", "skip", f"{where}: not known (Kafka does not answer)")
    done = next_offsets(s.path(s.data.master_dir), s.topics.events)
    offsets = {(s.topics.events, p): o for p, o in done.items()}
    n = probes.behind(kafka.value["end"], offsets, (s.topics.events,))  # nothing archived: all behind
    return checks.lag("archiver", where, n, s.speed.max_lag_records)


def _signal(s: Settings, kafka: Outcome, now_ms: int) -> Check:
    if kafka.error:
        return Check("signal", "skip", "not known (Kafka does not answer)")
    newest: dict[str, Any] = kafka.value["newest_ms"]
    return checks.signal(newest[s.topics.signals], newest[s.topics.events], now_ms, s.speed.stale_after_s)


def _batch(s: Settings, now_ms: int) -> Check:
    layout = VersionLayout(s.path(s.data.views_dir))
    vid = layout.current()
    as_of = int(layout.manifest(vid)["as_of_ms"]) if vid else None
    return checks.batch_version(vid, as_of, now_ms, s.batch.schedule, longest_gap_s(s.batch.schedule) * 1000)


def _model(s: Settings, api: Outcome) -> Check:
    v: dict[str, Any] = api.value or {}
    current = VersionLayout(s.path(s.data.views_dir)).current()
    return checks.model(v.get("view_version"), v.get("model_version"), current, api.error is None)


def _drift(redis: Outcome) -> DriftReport | None:
    return None if redis.error else drift_report(redis.value["drift"])


def _disk(s: Settings, disk: Outcome) -> Check:
    if disk.error:
        return Check(
            "disk",
            "fail",
            f"not known: {disk.error}",
            f"The state directory {s.state_dir} cannot be read ({disk.error}).",
        )
    used, complete, free = disk.value
    return checks.disk(used, complete, free, s.doctor.min_free_disk_mb, str(s.state_dir))
