"""`lambdastack serve --config F`: the served app (built by uvicorn's factory, as in each worker)
runs on the settings of F, not on conf/lambdastack.yaml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient
from uvicorn.importer import import_from_string

from lambdastack.settings import CONFIG_ENV
from serving.connections import GuardedHttpToolsProtocol
from tests.conftest import ROOT
from tools.cli import main

pytestmark = pytest.mark.unit


def custom_config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "conf" / "lambdastack.yaml").read_text())
    raw["serving"].update(port=18765, feed_k_default=3, feed_k_max=7, access_log=False)
    raw["redis"]["port"] = 1  # nothing listens there: the speed view is down
    path = tmp_path / "conf" / "custom.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(raw))
    return path


def test_serve_config_is_what_every_worker_serves(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("LAMBDASTACK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(CONFIG_ENV, str(ROOT / "conf" / "lambdastack.yaml"))  # replaced by --config
    served: dict = {}

    def fake_run(app: str, **options):
        served.update(options)
        served["app"] = import_from_string(app)()  # what each uvicorn worker does

    monkeypatch.setattr(uvicorn, "run", fake_run)
    config = custom_config(tmp_path)
    assert main(["--config", str(config), "serve", "--workers", "2"]) == 0

    assert served["port"] == 18765 and served["workers"] == 2 and served["factory"] is True
    app = served["app"]
    assert app.state.context.settings.serving.feed_k_max == 7
    assert app.state.context.settings.root == tmp_path
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/v1/users/u1/feed", params={"k": 7}).status_code == 200
        r = c.get("/v1/users/u1/feed", params={"k": 8})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "query.k"
    assert served["http"].func is GuardedHttpToolsProtocol  # the header deadline and size limit
    assert served["http"].keywords == {"header_timeout_s": 10.0, "max_header_bytes": 16384}
    assert served["limit_concurrency"] == 512 and served["timeout_keep_alive"] == 5


def test_serve_on_a_host_beyond_loopback_refuses_placeholder_keys_before_uvicorn_starts(
    tmp_path, monkeypatch, capsys
):
    for name in [n for n in os.environ if n.startswith("LAMBDASTACK_")]:
        monkeypatch.delenv(name)
    # what `serve` sets for its workers, undone after the test
    monkeypatch.setenv(CONFIG_ENV, str(ROOT / "conf" / "lambdastack.yaml"))
    monkeypatch.setenv("LAMBDASTACK_SERVING__HOST", "127.0.0.1")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("uvicorn started"))
    config = custom_config(tmp_path)  # the repo's dev key, a placeholder
    assert main(["--config", str(config), "serve", "--host", "0.0.0.0"]) != 0
    err = capsys.readouterr().err
    assert "api_keys ['dev'] are placeholders" in err
    assert "host 0.0.0.0 is reachable from other machines; set real keys" in err
