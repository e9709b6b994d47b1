"""The thin slice through every real joint: master dataset -> Spark -> published version;
events -> Kafka -> Flink -> Redis; and the API merging both without double counting and never
showing a user what they interacted with since the as-of."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import redis as redis_client

from lambdastack.events import Event
from lambdastack.keys import KeyLayout
from lambdastack.producer import EventProducer
from tests.conftest import make_isolated
from tests.integration.conftest import SharedVersion, start_api, start_speed_job
from tests.integration.helpers import eventually, seen_set
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

    # a new user interacts with more items than `recent` keeps, in one burst (one flush of the
    # users sink): the seen set holds every one, and the feed shows none of them
    n = s.speed.user_recent_n + 5
    cold = httpx.get(f"{base}/v1/users/seen-user/feed", params={"k": n}).json()
    shown = [i["item_id"] for i in cold["items"]]
    assert len(shown) == n
    start = int(time.time() * 1000)
    run = uuid.uuid4().hex[:8]
    with EventProducer(s) as producer:
        for k, item in enumerate(shown):
            producer.send(Event(f"seen-{run}-{k}", "seen-user", item, "view", 1.0, start + k))
    r = redis_client.Redis(host=s.redis.host, port=s.redis.port)
    seen_key = KeyLayout(s.redis.key_prefix).seen("seen-user")

    want = {item: start + k for k, item in enumerate(shown)}
    eventually(lambda: seen_set(r, seen_key) == want, 60, f"the {n} items in the seen set")
    again = httpx.get(f"{base}/v1/users/seen-user/feed", params={"k": 200}).json()
    assert again["degraded"] is False and again["items"]
    assert not {i["item_id"] for i in again["items"]} & set(shown)

    ready = httpx.get(f"{base}/ready").json()
    assert ready["ready"] is True
    assert ready["checks"] == {"batch_version": True, "model": True, "redis": True}
    speed = ready["speed"]  # the speed job of this test runs and keeps up: its heartbeat says so
    assert speed["ok"] is True and speed["problem"] == "" and speed["lag_records"] is not None, speed
    assert httpx.get(f"{base}/v1/users/{user}/feed", params={"k": 0}).status_code == 422
