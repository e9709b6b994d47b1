"""The thin slice through every real joint: master dataset -> Spark -> published version;
events -> Kafka -> Flink -> Redis; and the API merging both without double counting."""

from __future__ import annotations

import httpx
import pytest

from lambdastack.events import Event
from lambdastack.producer import EventProducer
from tests.conftest import make_isolated
from tests.integration.conftest import SharedVersion, start_api, start_speed_job
from tests.integration.helpers import eventually
from tools.simulate import burst

pytestmark = pytest.mark.integration


def test_feed_merges_batch_and_speed_and_reacts_to_a_burst(
    services, base_env, tmp_path, stopper, shared_version: SharedVersion
):
    # the session's version as of 2 hours ago, read-only (the job archives into this test's master)
    views = shared_version.views_dir
    iso = make_isolated(base_env, tmp_path, LAMBDASTACK_DATA__VIEWS_DIR=str(views))
    s = iso.settings
    events = shared_version.events
    vid = shared_version.versions[-1]
    assert shared_version.layout.current() == vid

    stopper.append(start_speed_job(iso))
    stopper.append(start_api(iso))
    base = f"http://{s.serving.host}:{s.serving.port}"
    user = events["user_id"][0].as_py()
    feed = httpx.get(f"{base}/v1/users/{user}/feed", params={"k": 5}).json()
    assert feed["view_version"] == vid and feed["degraded"] is False
    assert len(feed["items"]) == 5
    seen = {r["item_id"] for r in events.to_pylist() if r["user_id"] == user}
    assert not seen & {i["item_id"] for i in feed["items"]}
    target = feed["items"][-1]
    assert target["speed_count"] == 0 and "speed_popular" not in target["sources"]

    # one event older than the batch as-of: it is in the batch's time range, so the feed must not add it
    as_of = feed["as_of_ms"]
    old = Event("late-1", "late-user", target["item_id"], "view", 1.0, as_of - 60_000)
    with EventProducer(s) as producer:
        producer.send(old)
        for e in burst(target["item_id"], "burst-user", 150):
            producer.send(e)

    def burst_seen():
        got = httpx.get(f"{base}/v1/users/{user}/feed", params={"k": 200}).json()["items"]
        return next((i for i in got if i["item_id"] == target["item_id"] and i["speed_count"] >= 150), None)

    item = eventually(burst_seen, 60, "the burst reaching the feed")
    assert item["speed_count"] == 150  # the late event is not counted twice
    assert item["count"] == target["batch_count"] + 150
    assert "speed_popular" in item["sources"]
    detail = httpx.get(f"{base}/v1/items/{target['item_id']}").json()
    assert detail["count"] == target["batch_count"] + 150 and detail["speed_by_type"] == {"view": 150}

    ready = httpx.get(f"{base}/ready").json()
    assert ready == {"ready": True, "checks": {"batch_version": True, "model": True, "redis": True}}
    assert httpx.get(f"{base}/v1/users/{user}/feed", params={"k": 0}).status_code == 422
