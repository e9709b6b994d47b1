"""The verdicts of `lambdastack doctor`: plain facts in (what a probe found), one `Check` out.

A check is `ok`, `warn` (works, but wants a look), `fail` (broken) or `skip` (not known, because
what it reads is down: that service's own check names the problem). A warn or a fail carries one
sentence saying what to do. Nothing here talks to a service (tools.doctor.probes does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lambdastack.speed_health import DriftReport, SpeedHealth

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str  # one line: what was found
    todo: str = ""  # for a warn or a fail: one sentence, what to do

    @property
    def problem(self) -> bool:
        return self.status in ("warn", "fail")


def ago(ms: float) -> str:
    """A duration for a person: 4.2 s, 12 min, 5.0 h, 3.1 d."""
    s = max(0.0, ms / 1000)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def service(name: str, address: str, version: str | None, error: str | None, start: str) -> Check:
    """A service is up at its address, with its version; or down, with how to start it."""
    if error is not None:
        return Check(
            name, "fail", f"down at {address}: {error}", f"{name} at {address} does not answer: {start}."
        )
    return Check(name, "ok", f"up at {address}, {version}")


def speed_job(
    run: tuple[int, str] | None,
    health: SpeedHealth | None,
    restarts: int | str,
    log: str,
    version: str,
) -> Check:
    """The `speed run` process, the Flink job's state as its loader's heartbeat says, and its
    restarts (a count, or why they are not known)."""
    name = "speed job"
    if run is None:
        todo = (
            "The speed job is not running: start it with `lambdastack up` (or `lambdastack speed run`) "
            f"and read {log} for why it stopped."
        )
        return Check(name, "fail", "not running (no live `speed run` of speed.consumer_group)", todo)
    pid, job = run
    where = f"pid {pid}, job {job[:8] or '?'}"
    if health is None:
        return Check(name, "skip", f"{where}, state not known (Redis does not answer)")
    if not health.ok:
        todo = (
            f"The speed job is unhealthy ({health.problem}): read {log}, then restart it "
            "(`lambdastack speed stop`, `lambdastack speed run`)."
        )
        return Check(name, "fail", f"{where}: {health.problem}", todo)
    count = f"restarts {restarts}" if isinstance(restarts, int) else f"restarts unknown ({restarts})"
    detail = f"RUNNING, {where}, {count}, {version}"
    if isinstance(restarts, int) and restarts > 0:
        todo = f"The Flink job restarted {restarts} times since it started: read {log} for the failures."
        return Check(name, "warn", detail, todo)
    return Check(name, "ok", detail)


def lag(label: str, group: str, behind: int | None, max_lag: int) -> Check:
    """How many records of its topics a consumer (group) has not read; None: nothing committed yet."""
    name = f"lag {label}"
    if behind is None:
        return Check(name, "ok", f"{group}: no offsets committed yet")
    if behind > max_lag:
        todo = (
            f"The {label} consumer ({group}) is {behind:,} records behind, more than "
            f"speed.max_lag_records ({max_lag:,}): see the speed job's line and its log."
        )
        return Check(name, "fail", f"{group}: {behind:,} records behind", todo)
    return Check(name, "ok", f"{group}: {behind:,} records behind")


def signal(
    newest_signal_ms: int | None, newest_event_ms: int | None, now_ms: int, stale_after_s: float
) -> Check:
    """The newest signal's age, judged against the newest event: a signal older than the newest
    event by more than speed.stale_after_s means events are not turned into signals."""
    name = "signal"
    if newest_signal_ms is None and newest_event_ms is None:
        return Check(name, "ok", "no signal yet, and no event either")
    if newest_signal_ms is None:
        todo = "Events are on the events topic but the speed job has written no signal: see its line and log."
        return Check(
            name, "fail", f"no signal yet; newest event {ago(now_ms - (newest_event_ms or 0))} old", todo
        )
    detail = f"newest {ago(now_ms - newest_signal_ms)} old"
    if newest_event_ms is None:
        return Check(name, "ok", detail)
    behind = newest_event_ms - newest_signal_ms
    detail += f" (newest event {ago(now_ms - newest_event_ms)} old)"
    if behind > stale_after_s * 1000 and now_ms - newest_event_ms > stale_after_s * 1000:
        todo = (
            f"The newest signal is {ago(behind)} older than the newest event (more than "
            f"speed.stale_after_s, {stale_after_s:g} s): the speed job is not turning events into "
            "signals; read its log."
        )
        return Check(name, "fail", detail, todo)
    return Check(name, "ok", detail)


def batch_version(
    vid: str | None, as_of_ms: int | None, now_ms: int, schedule: str, period_ms: int | None
) -> Check:
    """The current version and its as-of's age against the batch schedule: older than two
    periods of `batch.schedule` means at least one scheduled run did not publish."""
    name = "batch"
    if vid is None or as_of_ms is None:
        return Check(
            name,
            "fail",
            "no version published",
            "No batch version is published: run `lambdastack batch run`.",
        )
    age = now_ms - as_of_ms
    if period_ms is None:
        return Check(name, "ok", f"{vid}, as of {ago(age)} ago (schedule {schedule})")
    detail = f"{vid}, as of {ago(age)} ago (schedule {schedule}: every {ago(period_ms)})"
    if age > 2 * period_ms:
        todo = (
            f"Batch version {vid} is {ago(age)} old, more than twice the schedule's {ago(period_ms)}: run "
            "`lambdastack batch run`, and check that `lambdastack batch crontab`'s line is installed."
        )
        return Check(name, "fail", detail, todo)
    return Check(name, "ok", detail)


def model(view: str | None, loaded: str | None, current: str | None, api_up: bool) -> Check:
    """The model the API has loaded, against CURRENT."""
    name = "model"
    if not api_up:
        return Check(name, "skip", "not known (the API does not answer)")
    if loaded is None:
        todo = (
            f"The API has loaded no ranking model (view {view or 'none'}): read its log for the failed load."
        )
        return Check(name, "fail", f"none loaded (view {view or 'none'})", todo)
    if current is not None and loaded != current:
        todo = (
            f"The API serves the model of {loaded} while CURRENT is {current}: read its log "
            "(`lambdastack_version_load_failing` is 1 while a load fails)."
        )
        return Check(name, "fail", f"{loaded} loaded, CURRENT is {current}", todo)
    return Check(name, "ok", f"{loaded} loaded by the API (CURRENT {current or 'none'})")


def drift(report: DriftReport | None, alert_at: float, now_ms: int) -> Check:
    """The newest drift report the loader wrote (`{p}:drift`): PSI per feature and the alert flag."""
    name = "drift"
    if report is None:
        return Check(name, "skip", "not known (Redis does not answer)")
    worst = report.worst()
    if worst is None:
        return Check(name, "ok", "no drift window closed yet")
    feature, psi = worst
    end = report.window_end_ms or now_ms
    events = "?" if report.events is None else report.events
    detail = f"max PSI {psi:.2f} ({feature}), {events} events, {ago(now_ms - end)} ago"
    if report.alert:
        todo = (
            f"The model's input {feature} has drifted (PSI {psi:.2f}, above "
            f"speed.drift_psi_alert {alert_at:g}): retrain with `lambdastack batch run`."
        )
        return Check(name, "warn", "ALERT, " + detail, todo)
    return Check(name, "ok", "no alert, " + detail)


def disk(used: int, complete: bool, free: int, min_free_mb: int, state_dir: str) -> Check:
    """Disk used by the state directory, and the space left on its disk."""
    name = "disk"
    detail = f"{'' if complete else 'at least '}{size(used)} in {state_dir}, {size(free)} free"
    if free < min_free_mb * 1024 * 1024:
        todo = (
            f"Only {size(free)} is free on the disk of {state_dir} (less than "
            f"doctor.min_free_disk_mb, {min_free_mb:,} MB): free space there (old logs, savepoints)."
        )
        return Check(name, "fail", detail, todo)
    return Check(name, "ok", detail)
