"""`lambdastack up` / `down` as a user runs them: a feed URL that works, a burst that shows, what
dies restarted by the supervisor with nothing lost, and nothing left behind by `down`. A second,
independent stack on its own ports and state directory."""

from __future__ import annotations

import os
import re
import signal
import time

import httpx
import psutil
import pytest

from tests.conftest import PORT_SHIFT
from tests.integration.helpers import eventually, run_cli
from tools.stack.manager import MEMBER_ENV
from tools.stack.process import ManagedProcess, port_open

pytestmark = pytest.mark.integration
PORTS = {
    key: port + PORT_SHIFT
    for key, port in {
        "KAFKA__PORT": 19292,
        "KAFKA__CONTROLLER_PORT": 19293,
        "REDIS__PORT": 16392,
        "SERVING__PORT": 18092,
        "PROMETHEUS__PORT": 19290,
    }.items()
}
EVENTS = 3000  # a small world: the demo works the same on it, the batch run is shorter


def test_up_prints_a_working_feed_url_and_down_leaves_nothing(base_env, tmp_path):
    env = dict(
        base_env,
        LAMBDASTACK_STACK__STATE_DIR=str(tmp_path / "state"),
        LAMBDASTACK_DATA__MASTER_DIR=str(tmp_path / "master"),
        LAMBDASTACK_DATA__CATALOGUE_DIR=str(tmp_path / "catalogue"),
        LAMBDASTACK_DATA__VIEWS_DIR=str(tmp_path / "views"),
        **{f"LAMBDASTACK_{k}": str(v) for k, v in PORTS.items()},
    )
    try:
        up = run_cli(["up", "--synthetic", "--events", str(EVENTS)], env, timeout_s=400)
        assert up.returncode == 0, f"up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        url = re.search(rf"(http://127\.0\.0\.1:{PORTS['SERVING__PORT']}/v1/users/\S+/feed\?k=10)", up.stdout)
        assert url, up.stdout
        feed = httpx.get(url.group(1)).json()
        assert len(feed["items"]) == 10 and feed["view_version"] == "v000001"
        explorer = re.search(rf"(http://127\.0\.0\.1:{PORTS['SERVING__PORT']}/ui/\?user=\S+)", up.stdout)
        assert explorer, up.stdout
        page = httpx.get(explorer.group(1))
        assert page.status_code == 200 and '<script type="module"' in page.text, page.text[:300]
        alerts = f"http://127.0.0.1:{PORTS['PROMETHEUS__PORT']}/alerts"
        assert f"Prometheus (targets, alerts): {alerts}" in up.stdout, up.stdout
        targets = f"http://127.0.0.1:{PORTS['PROMETHEUS__PORT']}/api/v1/targets"

        def jobs() -> set[str]:  # its target discovery fills in just after it is ready
            return {t["labels"]["job"] for t in httpx.get(targets).json()["data"]["activeTargets"]}

        eventually(lambda: {"lambdastack-api", "lambdastack-speed"} <= jobs(), 30, "Prometheus's targets")
        item = re.search(r"produce --simulate --item (\S+) --count", up.stdout)
        assert item, up.stdout
        before = next(i["count"] for i in feed["items"] if i["item_id"] == item.group(1))

        again = run_cli(
            ["up", "--synthetic", "--events", str(EVENTS)], env, timeout_s=200
        )  # twice is harmless
        assert again.returncode == 0, again.stderr[-2000:]
        assert "master dataset already holds data" in again.stdout

        sent = run_cli(["produce", "--simulate", "--item", item.group(1), "--count", "200"], env)
        assert sent.returncode == 0, sent.stderr

        def count() -> int:
            got = httpx.get(url.group(1)).json()["items"]
            return next((i["count"] for i in got if i["item_id"] == item.group(1)), 0)

        eventually(lambda: count() >= before + 200, 30, "the whole burst in the feed")
        time.sleep(1.0)
        assert count() == before + 200  # every event once, none twice

        # the supervisor `up` left running brings back what dies; a Redis restarted empty is
        # refilled by the loader's replay, so the feed shows the same counts again
        state = tmp_path / "state"
        for name in ("redis", "api"):
            pid = ManagedProcess(name, state).pid()
            assert pid is not None, name
            os.killpg(pid, signal.SIGKILL)
        killed = time.monotonic()

        def whole_again() -> bool:
            try:
                return count() == before + 200
            except (httpx.HTTPError, StopIteration, KeyError):
                return False

        eventually(whole_again, 90, "the feed whole again after the supervisor's restarts", 0.5)
        print(f"feed whole again {time.monotonic() - killed:.1f} s after Redis and the API were killed")
        shown = run_cli(["stack", "status"], env).stdout
        assert re.search(r"^redis .*restarts 1 ", shown, re.M) and re.search(
            r"^api .*restarts 1 ", shown, re.M
        ), shown
        assert re.search(r"^supervisor +running", shown, re.M), shown
        assert re.search(rf"^prometheus +running .*127\.0\.0\.1:{PORTS['PROMETHEUS__PORT']}", shown, re.M), (
            shown
        )
    finally:
        down = run_cli(["down"], env, timeout_s=120)
    assert down.returncode == 0, down.stderr
    for port in PORTS.values():
        assert not port_open("127.0.0.1", port), f"port {port} still in use after down"
    marker = str(tmp_path / "state")
    left = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get(MEMBER_ENV) == marker or p.cwd().startswith(marker):
                left.append(p.cmdline()[:3])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    assert left == [], f"processes left behind: {left}"
