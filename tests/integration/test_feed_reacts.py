"""The feed reacts to what the user just did, through every real joint: a user the batch knows,
with a clear taste for one topic, likes five items of a topic they never engaged with; within 2 s
of the last send (producer -> Kafka -> Flink -> loader -> Redis -> API) at least half of their top
10 come from that cluster's neighbourhood, and none of the five is in it (issue #12, Deliver 5).

The neighbourhood of the five: the items of their topic and the version's nearest neighbours of
each (`speed.fresh_neighbours_n` per item); an item counts only if the sources that follow the
user's new events proposed it (`recent_neighbours`, `speed_fresh`).

The API runs with the diversity cap off (`serving.genre_cap` 1.0): the world's topics are its
genres, and the default cap (0.4) allows at most 4 of 10 items of one genre, so with it no feed
could give half its places to one topic however it ranked (with the cap on, the first 4 places
went to the new topic). The 2 s bound holds on a quiet host (load average below 1.5 when the
events are sent); on a loaded one the test still requires the reaction, within 15 s, and prints
the time it took."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from lambdastack.events import Event
from lambdastack.producer import EventProducer
from lambdastack.published import PublishedVersion
from lambdastack.versions import VersionLayout
from tests.conftest import Isolated, make_isolated
from tests.integration.conftest import start_api, start_speed_job
from tests.integration.helpers import load_synthetic
from tools.stack.process import ManagedProcess

pytestmark = pytest.mark.integration
DAY = 86_400_000
REACTIVE = {"recent_neighbours", "speed_fresh"}  # the sources that follow the user's new events
WITHIN_S = 2.0  # on a quiet host
LOADED_WITHIN_S = 15.0  # on a loaded one (load average at least QUIET_LOAD)
QUIET_LOAD = 1.5


@dataclass
class Stack:
    iso: Isolated
    events: Any
    topic: dict[str, str]  # item -> its topic (the catalogue's genre)
    neighbours: dict[str, tuple[str, ...]]  # the version's neighbour lists, best first
    base: str
    procs: list[ManagedProcess]


@pytest.fixture(scope="module")
def stack(services, base_env, tmp_path_factory, spark) -> Iterator[Stack]:
    """A world of 8 topics x 30 items, one batch version as of an hour ago, the speed job and the API."""
    from batch.job import run as batch_run

    iso = make_isolated(base_env, tmp_path_factory.mktemp("reacts"), LAMBDASTACK_SERVING__GENRE_CAP="1.0")
    s = iso.settings
    now = int(time.time() * 1000)
    world = {
        "n_users": 150,
        "n_items": 240,
        "n_events": 12_000,
        "seed": 11,
        "start_ms": now - 8 * DAY,
        "days": 7,
    }
    events = load_synthetic(s, **world)
    vid = batch_run(s, as_of_ms=now - 3_600_000, echo=lambda _m: None)
    published = PublishedVersion(VersionLayout(s.path(s.data.views_dir)), vid)
    items = pq.read_table(s.path(s.data.catalogue_dir) / "items.parquet", columns=["item_id", "genres"])
    topic = {r["item_id"]: r["genres"][0] for r in items.to_pylist()}
    procs = [start_speed_job(iso), start_api(iso)]
    try:
        base = f"http://{s.serving.host}:{s.serving.port}"
        yield Stack(iso, events, topic, published.neighbours(), base, procs)
    finally:
        for p in procs:
            p.stop(timeout_s=20)


def _focused_user(stack: Stack) -> tuple[str, str, set[str]]:
    """The most active user whose events are mostly one topic, a topic they never touched, and
    every item they interacted with."""
    by_user: dict[str, Counter[str]] = {}
    seen: dict[str, set[str]] = {}
    for r in stack.events.to_pylist():
        by_user.setdefault(r["user_id"], Counter())[stack.topic[r["item_id"]]] += 1
        seen.setdefault(r["user_id"], set()).add(r["item_id"])
    topics = sorted(set(stack.topic.values()))
    focused = [u for u, c in by_user.items() if c.most_common(1)[0][1] >= 0.6 * sum(c.values())]
    user = max(focused, key=lambda u: (sum(by_user[u].values()), u))
    new_topic = min(topics, key=lambda t: (by_user[user][t], t))
    assert by_user[user][new_topic] == 0, f"{user} has engaged with every topic: {by_user[user]}"
    return user, new_topic, seen[user]


def _feed(stack: Stack, user: str) -> dict[str, Any]:
    r = httpx.get(f"{stack.base}/v1/users/{user}/feed", params={"k": 10})
    assert r.status_code == 200, r.text
    feed: dict[str, Any] = r.json()
    return feed


def _neighbourhood(stack: Stack, liked: list[str], new_topic: str) -> set[str]:
    per_item = stack.iso.settings.speed.fresh_neighbours_n
    near = {n for i in liked for n in stack.neighbours.get(i, ())[:per_item]}
    return near | {i for i, t in stack.topic.items() if t == new_topic}


def _reacted(feed: dict[str, Any], neighbourhood: set[str]) -> list[str]:
    return [
        i["item_id"] for i in feed["items"] if i["item_id"] in neighbourhood and REACTIVE & set(i["sources"])
    ]


def test_five_likes_of_a_new_topic_turn_half_the_feed_within_two_seconds(stack: Stack):
    user, new_topic, seen = _focused_user(stack)
    before = _feed(stack, user)
    assert not before["cold_start"] and not before["degraded"]
    by_count = Counter(r["item_id"] for r in stack.events.to_pylist())
    liked = sorted(
        (i for i, t in stack.topic.items() if t == new_topic and i not in seen),
        key=lambda i: (-by_count[i], i),
    )[:5]
    near = _neighbourhood(stack, liked, new_topic)
    already = len(_reacted(before, near))  # the old history's neighbours may overlap
    assert already < 5
    run = uuid.uuid4().hex[:8]
    with EventProducer(stack.iso.settings) as producer:
        for n, item in enumerate(liked):
            producer.send(Event(f"react-{run}-{n}", user, item, "like", 1.0, int(time.time() * 1000)))
        producer.flush()
    sent = time.monotonic()
    quiet = os.getloadavg()[0] < QUIET_LOAD
    bound = WITHIN_S if quiet else LOADED_WITHIN_S
    feed = before
    while time.monotonic() - sent < bound:
        feed = _feed(stack, user)
        # both at once: a read between the likes' writes may already follow the first ones
        if len(_reacted(feed, near)) >= 5 and not set(liked) & {i["item_id"] for i in feed["items"]}:
            break
        time.sleep(0.05)
    took = time.monotonic() - sent
    reacted = _reacted(feed, near)
    shown = [(i["item_id"], stack.topic.get(i["item_id"]), i["sources"]) for i in feed["items"]]
    print(f"the feed followed 5 likes in {took:.2f} s (load average {os.getloadavg()[0]:.1f}): {shown}")
    assert len(reacted) >= 5, (
        f"after {took:.2f} s (bound {bound} s, load {os.getloadavg()[0]:.1f}) only {len(reacted)} "
        f"of 10 follow the likes of {liked} ({new_topic}); signal age {feed['signal_age_ms']} ms: {shown}"
    )
    assert not set(liked) & {i["item_id"] for i in feed["items"]}
    assert len(reacted) > already
    assert sum(stack.topic[i["item_id"]] == new_topic for i in feed["items"]) >= 3  # the topic itself shows
