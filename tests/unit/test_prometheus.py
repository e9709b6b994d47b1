"""The alert rules (tools/stack/alerts.py) under `promtool test rules`, the generated files under
`promtool check`, and every metric a rule or the Grafana dashboard names against what the API and
`speed run` really export (their own registries, built as the processes build them)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lambdastack.settings import Settings, load_settings
from lambdastack.speed_health import judge
from serving.metrics import Metrics
from speed.loader import SignalLoader
from speed.metrics import FreshnessMetrics
from tests.promql import PROMETHEUS_OWN, dashboard_queries, exported_names, metric_names
from tools.stack import prometheus
from tools.stack.alerts import rules, rules_document

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "lambdastack.yaml"
RULES_TEST = Path(__file__).parent / "prometheus" / "rules_test.yml"
INFRA = ROOT / "infra" / "prometheus"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(CONF, environ={})


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool of Debian's prometheus, installed when missing (a missing one fails, never skips)."""
    return prometheus.binaries()[1]


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, cwd=cwd)


def test_promtool_unit_tests_of_every_rule_pass(settings, promtool, tmp_path):
    prometheus.write_files(settings, tmp_path)
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    done = _promtool(promtool, "test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_promtool_tests_fail_when_a_threshold_moves(settings, promtool, tmp_path):
    """The cases pin the thresholds of conf/: a different freshness target fails them."""
    moved = settings.model_copy(
        update={"prometheus": settings.prometheus.model_copy(update={"freshness_p99_s": 3.0})}
    )
    prometheus.write_files(moved, tmp_path)
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    done = _promtool(promtool, "test", "rules", RULES_TEST.name, cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "alertname: SpeedFreshnessSlow" in out, out
    assert "alertname: ApiErrors" not in out, out  # only the moved rule's cases fail


def test_every_rule_has_a_case_that_fires_and_one_that_does_not(settings):
    cases = [c for t in yaml.safe_load(RULES_TEST.read_text())["tests"] for c in t["alert_rule_test"]]
    fires = {c["alertname"] for c in cases if c["exp_alerts"]}
    silent = {c["alertname"] for c in cases if not c["exp_alerts"]}
    names = {r.alert for r in rules(settings)}
    assert fires == names, f"rules without a firing case: {names - fires}"
    assert silent == names, f"rules without a case that stays silent: {names - silent}"


def test_promtool_accepts_the_generated_config_and_rules(settings, promtool, tmp_path):
    config = prometheus.write_files(settings, tmp_path)
    done = _promtool(promtool, "check", "config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 rules found" in done.stdout, done.stdout
    prometheus.check(promtool, config)  # what `up` runs before it starts Prometheus


def _exported(settings: Settings) -> set[str]:
    """Series names of the API's and `speed run`'s registries, built as the processes build them
    (the speed process also registers its loader's collector)."""
    api = Metrics()
    api.speed_state(judge(None, 0, 8, 100))
    speed = FreshnessMetrics()
    speed.watch(SignalLoader(settings))
    return exported_names([*api.registry.collect(), *speed.registry.collect()])


def test_every_metric_a_rule_names_is_exported(settings):
    exported = _exported(settings)
    for rule in rules(settings):
        names = metric_names(rule.expr)
        assert names, f"{rule.alert}: no metric found in {rule.expr!r}"
        missing = names - exported - PROMETHEUS_OWN
        assert not missing, f"{rule.alert} names {sorted(missing)}, which nothing exports"


def test_every_metric_a_dashboard_query_names_is_exported(settings):
    exported = _exported(settings)
    queries = dashboard_queries()
    assert len(queries) >= 10
    for title, expr in queries:
        names = metric_names(expr)
        assert names, f"panel {title!r}: no metric in {expr!r}"
        missing = names - exported - PROMETHEUS_OWN
        assert not missing, f"panel {title!r} queries {sorted(missing)}, which nothing exports"


def test_a_name_nothing_exports_is_found(settings):
    """The check itself: a misspelt or removed metric is not in the exported set."""
    exported = _exported(settings)
    assert "lambdastack_speed_freshness_seconds_bucket" in exported
    assert metric_names("rate(lambdastack_speed_freshnes_seconds_bucket[5m]) > 1") - exported
    assert "lambdastack_responses" not in exported  # a counter is exported as ..._total


def test_the_dashboards_queries_are_valid_promql(promtool, tmp_path):
    """Each query, as a recording rule, passes promtool's parser ($__rate_interval as Grafana fills it)."""
    group = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, (_, expr) in enumerate(dashboard_queries())
    ]
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": group}]}))
    done = _promtool(promtool, "check", "rules", "dashboard.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_files_of_infra_prometheus_are_the_ones_conf_renders(settings, tmp_path):
    prometheus.compose_files(settings, tmp_path)
    for name in (prometheus.CONFIG, prometheus.RULES):
        assert (INFRA / name).read_text() == (tmp_path / name).read_text(), (
            f"infra/prometheus/{name} differs from what conf/ renders; run "
            "`lambdastack stack prometheus-files --compose infra/prometheus`"
        )


def test_the_targets_follow_the_settings(settings):
    assert prometheus.targets(settings) == {
        "lambdastack-api": "127.0.0.1:8000",
        "lambdastack-speed": "127.0.0.1:9249",
        "lambdastack-flink": "127.0.0.1:9250",
    }
    env = {"LAMBDASTACK_SPEED__FLINK_METRICS_PORT": "0", "LAMBDASTACK_SERVING__PORT": "18040"}
    off = load_settings(CONF, environ=env)
    assert prometheus.targets(off) == {
        "lambdastack-api": "127.0.0.1:18040",
        "lambdastack-speed": "127.0.0.1:9249",
    }
    assert set(prometheus.targets(settings, prometheus.COMPOSE_HOSTS).values()) == {
        "api:8000",
        "speed:9249",
        "speed:9250",
    }


def test_the_thresholds_come_from_the_settings(settings):
    env = {"LAMBDASTACK_BATCH__SCHEDULE": "0 3 * * 1", "LAMBDASTACK_PROMETHEUS__ERROR_RATIO_MAX": "0.005"}
    doc = rules_document(load_settings(CONF, environ=env))
    exprs = {r["alert"]: r["expr"] for r in doc["groups"][0]["rules"]}
    assert exprs["BatchVersionStale"].endswith(f"> {2 * 7 * 86400}")  # weekly: twice a week
    assert exprs["ApiErrors"].endswith("> 0.005")
    assert rules_document(settings)["groups"][0]["interval"] == "15s"


def test_prometheus_must_stay_on_loopback():
    from lambdastack.errors import ConfigError

    with pytest.raises(ConfigError, match="prometheus: .*host 0.0.0.0 .*no authentication"):
        load_settings(CONF, environ={"LAMBDASTACK_PROMETHEUS__HOST": "0.0.0.0"})


def _sample(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


def test_the_api_exports_the_served_versions_as_of_and_whether_the_speed_job_runs(tmp_path):
    """What BatchVersionStale and SpeedJobDown read: set by the app's swap hook and at each scrape."""
    from dataclasses import replace

    from serving.app import create_app
    from serving.batch_view import BatchView
    from serving.served_version import ServedVersion

    app = create_app(load_settings(CONF, environ={"LAMBDASTACK_DATA__VIEWS_DIR": str(tmp_path)}))
    ctx = app.state.context
    assert _sample(ctx.metrics, "lambdastack_batch_as_of_timestamp_seconds") == 0  # nothing served yet
    ctx.state.on_swap(
        ServedVersion(replace(BatchView.empty(), version="v000007", as_of_ms=1_796_356_800_000), None)
    )
    assert _sample(ctx.metrics, "lambdastack_batch_as_of_timestamp_seconds") == 1_796_356_800
    assert (
        ctx.metrics.registry.get_sample_value(
            "lambdastack_loaded_version_info", {"role": "view", "version": "v000007"}
        )
        == 1
    )
    ctx.state.on_swap(ServedVersion.empty())
    assert _sample(ctx.metrics, "lambdastack_batch_as_of_timestamp_seconds") == 0
    now = 1_000_000
    fresh = {"beat_ms": now - 1000, "job_ms": now - 1000, "lag": 5, "replaying": 0}
    for beat, running in ((fresh, 1), ({**fresh, "job_ms": now - 9000}, 0), (None, 0)):
        ctx.metrics.speed_state(judge(beat, now, 8, 100))
        assert _sample(ctx.metrics, "lambdastack_speed_job_running") == running
