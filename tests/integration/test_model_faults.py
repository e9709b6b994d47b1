"""A published model that cannot be loaded never takes the API down: the version held stays in
use, the load is retried with backoff, the metrics show it, and the version loads once it can."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from lambdastack.registry import promote
from lambdastack.versions import VersionLayout
from tests.conftest import make_isolated
from tests.integration.conftest import SharedVersion, start_api
from tests.integration.helpers import eventually

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
RELOAD_S = 0.2


def _metric(base: str, name: str) -> dict[str, float]:
    """label text -> value of one metric family in the API's /metrics."""
    text = httpx.get(f"{base}/metrics").text
    return {m[1] or "": float(m[2]) for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M)}


def test_a_corrupt_model_keeps_the_old_version_serving_and_is_retried_with_backoff(
    base_env, tmp_path, shared_version: SharedVersion
):
    views = shared_version.copy_views(tmp_path / "views")
    old, new = shared_version.versions
    layout = VersionLayout(views)
    promote(layout, old)
    iso = make_isolated(
        base_env,
        tmp_path,
        LAMBDASTACK_DATA__VIEWS_DIR=str(views),
        LAMBDASTACK_SERVING__RELOAD_INTERVAL_S=str(RELOAD_S),
    )
    api = start_api(iso)
    s = iso.settings
    base = f"http://{s.serving.host}:{s.serving.port}"
    user = shared_version.events.column("user_id")[0].as_py()
    try:
        eventually(
            lambda: httpx.get(f"{base}/version").json()["view_version"] == old, 30, "the old version served"
        )
        model = layout.model_file(new)
        good = model.read_bytes()
        model.write_bytes(b"not an onnx model")  # a publish gone wrong: CURRENT moved past promote's check
        layout.set_current(new)
        started = time.monotonic()
        eventually(
            lambda: _metric(base, "lambdastack_version_load_failing") == {f'{{version="{new}"}}': 1.0},
            10,
            "the failing version in the metrics",
        )
        feed = httpx.get(f"{base}/v1/users/{user}/feed?k=5")
        assert feed.status_code == 200 and feed.json()["view_version"] == old  # the old one serves
        time.sleep(max(0.0, 9.6 - (time.monotonic() - started)))  # 48 checks of CURRENT
        failures = _metric(base, "lambdastack_version_load_failures_total")[""]
        # waits of 0.2, 0.4, 0.8, 1.6, 3.2, 6.4 s: at most 6 tries in 9.6 s, where a retry at every
        # check would have made ~48
        assert 2 <= failures <= 6, failures
        assert httpx.get(f"{base}/version").json()["view_version"] == old
        model.write_bytes(good)  # repaired: loaded at the next retry, within the longest wait
        eventually(
            lambda: httpx.get(f"{base}/version").json()["view_version"] == new,
            15,
            "the repaired version loaded",
        )
        assert _metric(base, "lambdastack_version_load_failing") == {}
        assert f"loading batch version {new} failed" in api.log_tail(400)
    finally:
        api.stop(timeout_s=20)
