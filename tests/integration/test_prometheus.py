"""The stack's Prometheus (tools/stack/prometheus.py, Debian's package) against a real API of the
test stack and the speed process's real exporter: both targets scraped, every alert rule loaded
and evaluated, and every metric a rule or the dashboard names present in the real scrapes.

No Flink job is started (its cost is ~40 CPU s): the exporter is `speed run`'s own FreshnessMetrics
with its loader's collector, served on speed.metrics_port in this process, as `speed run` serves it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lambdastack.settings import Settings, load_settings
from speed.loader import SignalLoader
from speed.metrics import FreshnessMetrics
from tests.conftest import make_isolated
from tests.integration.conftest import start_api
from tests.integration.helpers import eventually
from tests.promql import PROMETHEUS_OWN, dashboard_queries, exported_names, metric_names
from tools.stack import prometheus
from tools.stack.alerts import rules

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Watched:
    settings: Settings  # of this module's Prometheus (its own state directory), the API's ports
    api_metrics: str
    speed_metrics: str


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def _api(settings: Settings, path: str) -> Any:
    """The `data` of an answer of Prometheus's HTTP API."""
    answer = json.loads(_get(f"{prometheus.url(settings)}/api/v1/{path}"))
    assert answer["status"] == "success", answer
    return answer["data"]


@pytest.fixture(scope="module")
def watched(
    base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, services: Settings
) -> Iterator[Watched]:
    """The API of the test stack, the speed exporter, and Prometheus scraping both every second."""
    tmp = tmp_path_factory.mktemp("prometheus")
    iso = make_isolated(base_env, tmp, LAMBDASTACK_PROMETHEUS__SCRAPE_INTERVAL_S="1")
    api = start_api(iso)
    speed = FreshnessMetrics()
    speed.watch(SignalLoader(iso.settings))
    s = iso.settings.speed
    speed.start(s.metrics_host, s.metrics_port)
    own = load_settings(environ={**iso.env, "LAMBDASTACK_STACK__STATE_DIR": str(tmp / "state")})
    try:
        prometheus.start(own)
        yield Watched(
            own,
            f"http://{iso.settings.serving.host}:{iso.settings.serving.port}/metrics",
            f"http://{s.metrics_host}:{s.metrics_port}/metrics",
        )
    finally:
        prometheus.process(own).stop()
        speed.stop()
        api.stop()


def test_prometheus_listens_on_loopback_at_the_configured_port(watched):
    import psutil

    p = watched.settings.prometheus
    pid = prometheus.process(watched.settings).pid()
    assert pid is not None and prometheus.ready(watched.settings)
    listening = {
        (c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections("tcp") if c.status == "LISTEN"
    }
    assert listening == {("127.0.0.1", p.port)}
    assert (prometheus.home(watched.settings) / prometheus.RULES).is_file()


def test_the_api_and_the_speed_exporter_are_scraped(watched):
    def targets() -> dict[str, str]:
        active = _api(watched.settings, "targets?state=active")["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}

    # the test stack sets speed.flink_metrics_port 0: no Flink reporter target
    expected = {"lambdastack-api": "up", "lambdastack-speed": "up"}
    eventually(lambda: targets() == expected, 30, "both targets scraped", interval_s=0.5)
    ups = _api(watched.settings, "query?query=up")["result"]
    assert {r["metric"]["job"]: r["value"][1] for r in ups} == {
        "lambdastack-api": "1",
        "lambdastack-speed": "1",
    }


def test_every_rule_is_loaded_and_evaluated_and_the_dead_speed_job_alerts(watched):
    groups = _api(watched.settings, "rules")["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == {r.alert for r in rules(watched.settings)}
    assert all(r["type"] == "alerting" for r in loaded.values())

    def evaluated() -> bool:
        now = {r["name"]: r for g in _api(watched.settings, "rules")["groups"] for r in g["rules"]}
        return all(r["health"] == "ok" for r in now.values())

    eventually(evaluated, 30, "every rule evaluated without an error", interval_s=0.5)

    # no speed job runs here: the API's lambdastack_speed_job_running is 0, SpeedJobDown pends (for 1m)
    def speed_job_down() -> list[Any]:
        return [
            a
            for a in _api(watched.settings, "alerts")["alerts"]
            if a["labels"]["alertname"] == "SpeedJobDown"
        ]

    (alert,) = eventually(speed_job_down, 30, "SpeedJobDown pending", interval_s=0.5)
    assert alert["state"] in ("pending", "firing") and alert["labels"]["job"] == "lambdastack-api"
    names = {a["labels"]["alertname"] for a in _api(watched.settings, "alerts")["alerts"]}
    assert "TargetDown" not in names and "ApiErrors" not in names, names


def test_every_metric_a_rule_or_the_dashboard_names_is_in_the_real_scrapes(watched):
    families = [
        family
        for url in (watched.api_metrics, watched.speed_metrics)
        for family in text_string_to_metric_families(_get(url))
    ]
    exported = exported_names(families) | PROMETHEUS_OWN
    for rule in rules(watched.settings):
        missing = metric_names(rule.expr) - exported
        assert not missing, f"{rule.alert} names {sorted(missing)}, which the real processes do not export"
    for title, expr in dashboard_queries():
        missing = metric_names(expr) - exported
        assert not missing, (
            f"panel {title!r} queries {sorted(missing)}, which the real processes do not export"
        )
    running = _api(watched.settings, "query?query=lambdastack_speed_job_running")["result"]
    assert [r["value"][1] for r in running] == ["0"]
