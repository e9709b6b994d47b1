"""The explorer page (/ui) as the API serves it, and the endpoints written for it (/v1/status,
/v1/users/sample): files, headers, the page's settings, and what its panels read. The page itself
runs in a real browser in tests/integration/test_feed_reacts.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lambdastack.errors import ConfigError
from lambdastack.events import EVENT_TYPES
from serving.app import create_app
from serving.routes.explorer import ACTIONS
from tests.conftest import ROOT
from tests.unit.test_serving_api import WRITER, served, settings  # noqa: F401 - the fixture

pytestmark = pytest.mark.unit
UI = ROOT / "serving" / "ui"


def test_the_page_and_every_file_it_loads_are_served_with_their_types_and_policy(served):  # noqa: F811
    r = served.get("/ui", params={"user": "u1"}, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/?user=u1"
    page = served.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    loaded = re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text)
    for js in UI.glob("*.js"):  # the modules' own imports
        loaded += ["/ui/" + m for m in re.findall(r'from "\./([^"]+)"', js.read_text())]
    assert {"/ui/explorer.js", "/ui/api.js", "/ui/render.js", "/ui/style.css"} <= set(loaded)
    types = {".js": "text/javascript", ".css": "text/css"}
    for url in loaded:
        r = served.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith(types[Path(url).suffix]), url
    assert not re.search(r"https?://", page.text + "".join(p.read_text() for p in UI.iterdir()))  # offline


@pytest.mark.parametrize("name", ["nope.js", "..%2Fapp.py", ".hidden.js", "index.py"])
def test_nothing_but_the_pages_files_is_served(served, name):  # noqa: F811
    r = served.get(f"/ui/{name}")
    assert r.status_code == 404  # a path past /ui/ matches no route at all


def test_the_page_gets_the_configured_events_key_or_none(tmp_path, served):  # noqa: F811
    config = served.get("/ui/config.json").json()
    assert config["events_key"] == WRITER and config["poll_ms"] >= 1000
    assert set(config["actions"]) == set(ACTIONS) and set(ACTIONS) <= set(EVENT_TYPES)
    with TestClient(create_app(settings(tmp_path, LAMBDASTACK_SERVING__UI_KEY="null"))) as c:
        assert c.get("/ui/config.json").json()["events_key"] is None
        assert c.get("/v1/status").json()["ui_events"] is False


@pytest.mark.parametrize("ui_key", ["nobody", "reader"])
def test_the_ui_key_must_name_a_key_that_may_write_events(tmp_path, ui_key):
    with pytest.raises(
        ConfigError, match=f"ui_key '{ui_key}' must name one of api_keys that has the scope events:write"
    ):
        settings(tmp_path, LAMBDASTACK_SERVING__UI_KEY=ui_key)


def test_status_shows_versions_split_speed_health_and_drift(served):  # noqa: F811
    s = served.get("/v1/status").json()
    assert (s["view_version"], s["model_version"], s["degraded"], s["ui_events"]) == (
        "v000001",
        "v000001",
        False,
        True,
    )
    assert s["ab"] == {"enabled": False, "challenger_version": None, "challenger_share": 0.0}
    assert s["speed"]["ok"] is True
    assert s["drift"]["alert"] is True and s["drift"]["psi"] == {"item_pop": 0.31, "knn_score": 0.02}
    assert s["drift"]["events"] == 400


def test_status_without_redis_or_a_version_is_degraded(tmp_path):
    with TestClient(create_app(settings(tmp_path))) as c:
        s = c.get("/v1/status").json()
    assert s["degraded"] is True and s["drift"] is None and s["view_version"] is None
    assert s["speed"]["ok"] is False and "Redis" in s["speed"]["problem"]


def test_a_random_sample_holds_distinct_users_of_the_version(served):  # noqa: F811
    got = served.get("/v1/users/sample", params={"n": 5}).json()
    assert got["known"] == 2 and sorted(got["users"]) == ["u1", "u2"]  # the world knows two
    drawn = {served.get("/v1/users/sample").json()["users"][0] for _ in range(40)}
    assert drawn == {"u1", "u2"}
    assert served.get("/v1/users/sample", params={"n": 101}).status_code == 422


def test_feed_items_say_which_recent_item_led_to_them(served):  # noqa: F811
    feed = served.get("/v1/users/u1/feed", params={"k": 60}).json()
    by_knn = [i for i in feed["items"] if "recent_neighbours" in i["sources"]]
    assert by_knn and all(i["because"] in {"i5", "i8", "i4", "i0"} for i in by_knn)
    assert all(i["because"] is None for i in feed["items"] if "recent_neighbours" not in i["sources"])
