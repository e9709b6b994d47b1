"""The prometheus and grafana services of infra/docker-compose.yml agree with conf/lambdastack.yaml,
with infra/prometheus/ and infra/grafana/, and with the Prometheus the rules are tested by."""

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lambdastack.settings import Settings, load_settings
from tests.unit.test_compose import _healthcheck_text, _image, _published
from tools.stack import prometheus

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "lambdastack.yaml"
INFRA = ROOT / "infra"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(CONF, environ={})


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())["services"]


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (relative to infra/) of the service's bind mounts."""
    out = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        if source.startswith("."):
            out[target] = (INFRA / source).resolve()
    return out


def test_prometheus_listens_on_the_configured_port_with_the_rendered_files(services, settings):
    prom = services["prometheus"]
    port = settings.prometheus.port
    assert (port, port) in _published(prom), f"prometheus must publish {port}:{port}, has {prom.get('ports')}"
    assert all(str(p).startswith("127.0.0.1:") for p in prom["ports"]), "bind the host port to loopback"
    args = dict(a.removeprefix("--").split("=", 1) for a in prom["command"])
    assert args["web.listen-address"] == f":{port}"
    assert args["storage.tsdb.retention.time"] == settings.prometheus.retention
    assert f"localhost:{port}/-/ready" in _healthcheck_text(prom)
    config = Path(args["config.file"])
    mounted = _mounts(prom)[str(config.parent)]
    assert mounted == INFRA / "prometheus", f"{config.parent} mounts {mounted}, not infra/prometheus"
    rendered = yaml.safe_load((mounted / config.name).read_text())
    assert rendered["rule_files"] == [prometheus.RULES] and (mounted / prometheus.RULES).is_file()
    targets = {c["job_name"]: c["static_configs"][0]["targets"] for c in rendered["scrape_configs"]}
    assert targets["lambdastack-api"] == [f"api:{settings.serving.port}"]
    assert targets["lambdastack-speed"] == [f"speed:{settings.speed.metrics_port}"]


def test_the_speed_container_serves_its_metrics_to_the_prometheus_container(services):
    env = services["speed"]["environment"]
    assert env.get("LAMBDASTACK_SPEED__METRICS_HOST") == "0.0.0.0", "127.0.0.1 is the container's own"


def test_the_prometheus_image_is_the_version_the_rules_are_tested_with(services):
    """`promtool test rules` runs with Debian's prometheus; the compose image is the same release."""
    server, _ = prometheus.binaries()
    shown = subprocess.run([server, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"version (\d+\.\d+\.\d+)", shown)
    assert found, shown
    image, tag = _image(services["prometheus"])
    assert image == "prom/prometheus", f"expected the official prom/prometheus image, got {image!r}"
    assert tag == f"v{found.group(1)}", f"image tag {tag} != the tested prometheus {found.group(1)}"


def test_grafana_provisions_the_prometheus_service_and_the_dashboard(services, settings):
    graf = services["grafana"]
    image, _ = _image(graf)
    assert image == "grafana/grafana"
    assert all(str(p).startswith("127.0.0.1:") for p in graf["ports"]), "bind the host port to loopback"
    assert graf["depends_on"]["prometheus"]["condition"] == "service_healthy"
    mounts = _mounts(graf)
    provisioning = mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == f"http://prometheus:{settings.prometheus.port}"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "lambdastack.yml").read_text())["providers"]
    boards = mounts[provider["options"]["path"]]
    assert boards == INFRA / "grafana" / "dashboards" and (boards / "lambdastack.json").is_file()
    home = graf["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/") and (boards / Path(home).name).is_file()
    board = yaml.safe_load((boards / "lambdastack.json").read_text())
    uids = {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}, (
        f"the dashboard's queries use data sources {uids}, provisioned: {source['uid']}"
    )
