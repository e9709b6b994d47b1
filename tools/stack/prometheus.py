"""Debian's prometheus bound to loopback (`prometheus.host:port`), installed with apt-get if
missing, scraping the API (`serving.port`), `speed run`'s exporter (`speed.metrics_port`) and Flink's
reporter (`speed.flink_metrics_port`), with the alert rules of tools/stack/alerts.py.

`start` writes `{state}/prometheus/prometheus.yml` and `rules.yml` from the settings each time, so
a changed port or threshold takes effect at the next `up`; the samples live in
`{state}/prometheus/data` for `prometheus.retention`. `compose_files` renders the same two files
for infra/docker-compose.yml, where the targets are the compose services.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lambdastack.errors import ServiceError
from lambdastack.settings import Settings
from tools.stack.alerts import duration, rules_document
from tools.stack.debian import ensure_binary
from tools.stack.process import ManagedProcess, port_open, wait_until

PACKAGE = "prometheus"
CONFIG, RULES = "prometheus.yml", "rules.yml"
COMPOSE_HOSTS = {"api": "api", "speed": "speed"}  # the compose services that serve the metrics


def process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("prometheus", settings.state_dir)


def home(settings: Settings) -> Path:
    return settings.state_dir / "prometheus"


def binaries() -> tuple[str, str]:
    """Paths of prometheus and promtool (one Debian package), installing it when missing."""
    server, installed = ensure_binary("prometheus", PACKAGE)
    if installed:  # Debian starts a system instance on 9090 after install; the stack runs its own
        for service in ("prometheus", "prometheus-node-exporter"):
            subprocess.run(["service", service, "stop"], capture_output=True)
    promtool, _ = ensure_binary("promtool", PACKAGE)
    return server, promtool


def targets(settings: Settings, hosts: Mapping[str, str] | None = None) -> dict[str, str]:
    """Scrape job -> `host:port`, on the hosts of the settings unless `hosts` names others (by
    service: api, speed); a port set to 0 in the settings is no target."""
    s = settings.speed
    api, speed = (hosts["api"], hosts["speed"]) if hosts else (settings.serving.host, s.metrics_host)
    found = {
        "lambdastack-api": (api, settings.serving.port),
        "lambdastack-speed": (speed, s.metrics_port),
        "lambdastack-flink": (speed, s.flink_metrics_port),
    }
    return {job: f"{host}:{port}" for job, (host, port) in found.items() if port}


def config_document(settings: Settings, hosts: Mapping[str, str] | None = None) -> dict[str, Any]:
    """prometheus.yml: the scrape targets, and the rules file beside it."""
    interval = duration(settings.prometheus.scrape_interval_s)
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [RULES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets(settings, hosts).items()
        ],
    }


def write_files(settings: Settings, folder: Path, hosts: Mapping[str, str] | None = None) -> Path:
    """Write prometheus.yml and rules.yml into `folder`; returns the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    header = (
        "# written from conf/lambdastack.yaml by `lambdastack stack prometheus-files` "
        "(tools/stack/prometheus.py, alerts.py): regenerate, do not edit\n"
    )
    for name, doc in ((CONFIG, config_document(settings, hosts)), (RULES, rules_document(settings))):
        (folder / name).write_text(header + yaml.safe_dump(doc, sort_keys=False, width=1000))
    return folder / CONFIG


def compose_files(settings: Settings, folder: Path) -> Path:
    """The files infra/docker-compose.yml mounts: the targets are the compose services."""
    return write_files(settings, folder, COMPOSE_HOSTS)


def check(promtool: str, config: Path) -> None:
    """`promtool check config` (which checks the rules files it names too)."""
    done = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceError(f"promtool finds {config} invalid: {(done.stdout + done.stderr).strip()[-800:]}")


def url(settings: Settings) -> str:
    return f"http://{settings.prometheus.host}:{settings.prometheus.port}"


def ready(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(f"{url(settings)}/-/ready", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def start(settings: Settings) -> int:
    """Start Prometheus (idempotent) and wait until it is ready; returns the pid."""
    proc = process(settings)
    if proc.running():
        wait_until(lambda: ready(settings), settings.stack.ready_timeout_s, "Prometheus", proc)
        return proc.pid() or 0
    p = settings.prometheus
    if port_open(p.host, p.port):
        raise ServiceError(
            f"port {p.port} is taken by a process lambdastack did not start; "
            "stop it or set prometheus.port in conf/lambdastack.yaml"
        )
    server, promtool = binaries()
    config = write_files(settings, home(settings))
    check(promtool, config)
    pid = proc.start(
        [
            server,
            f"--config.file={config}",
            f"--storage.tsdb.path={home(settings) / 'data'}",
            f"--storage.tsdb.retention.time={p.retention}",
            f"--web.listen-address={p.host}:{p.port}",
        ],
        cwd=home(settings),
    )
    wait_until(lambda: ready(settings), settings.stack.ready_timeout_s, "Prometheus", proc)
    return pid
