"""The user pipeline of the speed job on real Kafka, Flink and Redis, with a real batch version:
`recent` is the user's last N interactions, the seen set every item they interacted with, `fresh`
the unseen neighbours of what they just engaged with scored by the version's ONNX model (equal to
the pure scoring function), a promoted version is followed without a restart, and a replay from
the earliest offset writes the same bytes."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid

import httpx
import pytest
import redis as redis_client

from lambdastack.events import Event
from lambdastack.keys import KeyLayout
from lambdastack.producer import EventProducer
from lambdastack.published import PublishedVersion
from lambdastack.registry import promote
from lambdastack.settings import Settings, load_settings
from lambdastack.speedview import Interaction, decode_fresh, decode_recent
from lambdastack.versions import VersionLayout
from speed import scoring_view
from speed.scoring import score
from speed.udf_metrics import version_number
from tests.conftest import Isolated, make_isolated
from tests.integration.conftest import SharedVersion, start_speed_job
from tests.integration.helpers import eventually, free_ports, seen_set

pytestmark = pytest.mark.integration
RECENT_N = 5
JOB_START_S = 300  # two jobs start here; a shared 2-core host can take minutes
SETTINGS_ENV = {
    "LAMBDASTACK_SPEED__USER_RECENT_N": str(RECENT_N),
    "LAMBDASTACK_SPEED__METRICS_PORT": "0",
    "LAMBDASTACK_SPEED__ARCHIVE_ENABLED": "false",
}


def _copy_as_new_version(layout: VersionLayout, vid: str) -> str:
    """A second complete version (same views under a new id), appearing by one rename."""
    new = f"v{layout.next_version_number():06d}"
    tmp = layout.views_dir / f".copy-{uuid.uuid4().hex[:8]}"
    shutil.copytree(layout.version_dir(vid), tmp)
    os.rename(tmp, layout.version_dir(new))
    return new


def _user_hash(r: redis_client.Redis, layout: KeyLayout, user: str) -> dict[bytes, bytes]:
    return r.hgetall(layout.user(user))  # type: ignore[return-value]


def _seen_set(r: redis_client.Redis, layout: KeyLayout, user: str) -> dict[str, int]:
    return seen_set(r, layout.seen(user))


def _gauges(port: int, function: str) -> dict[str, float]:
    """The function's model gauges from Flink's Prometheus reporter (the highest over subtasks)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    prefix = f"flink_taskmanager_job_task_operator_lambdastack_{function}_"
    for name, value in re.findall(rf"^{prefix}(\w+)\{{[^}}]*\}} (\S+)$", text, re.M):
        found[name] = max(found.get(name, float("-inf")), float(value))
    return found


def _a_corrupt_model_keeps_the_version_in_use(
    s: Settings,
    r: redis_client.Redis,
    keys: KeyLayout,
    layout: VersionLayout,
    user: str,
    unseen: list[str],
    in_use: str,
) -> list[Event]:
    """CURRENT moved to a version whose model is corrupt: the job scores on with the version it
    holds, retries with backoff, and Flink's metrics show the failure; repaired, it is loaded.
    Returns the events it sent."""
    bad = _copy_as_new_version(layout, in_use)
    model = layout.model_file(bad)
    good = model.read_bytes()
    model.write_bytes(b"not an onnx model")
    layout.set_current(bad)  # a publish gone wrong: past promote's check
    port, sent = s.speed.flink_metrics_port, list[Event]()

    def scored_by(vid: str, gauges: dict[str, float]) -> bool:
        item = unseen[len(sent) % len(unseen)]
        sent.append(Event(f"e{uuid.uuid4().hex}", user, item, "like", 1.0, int(time.time() * 1000)))
        e = sent[-1]
        with EventProducer(s) as producer:
            producer.send(e)
        time.sleep(0.5)
        f = decode_fresh(_user_hash(r, keys, user).get(b"fresh"))
        shown = _gauges(port, "score_fresh")
        return f is not None and f.view_version == vid and all(shown.get(k) == v for k, v in gauges.items())

    failing = {"model_load_failing": 1.0, "model_version": float(version_number(in_use))}
    eventually(lambda: scored_by(in_use, failing), 60, "the failing load in Flink's metrics", 0.1)
    assert _gauges(port, "score_fresh")["model_load_failures"] >= 1
    model.write_bytes(good)
    loaded = {"model_load_failing": 0.0, "model_version": float(version_number(bad))}
    eventually(lambda: scored_by(bad, loaded), 90, "the repaired version loaded", 0.1)
    return sent


def _entries(events: list[Event]) -> list[Interaction]:
    return [Interaction(e.item_id, e.type, e.value, e.event_time_ms, e.event_id) for e in events]


def test_recent_and_fresh_follow_the_user_and_the_published_version(
    services, base_env, tmp_path, stopper, shared_version: SharedVersion
):
    # a copy of the session's versions (this test promotes one), the older one (3 days ago) current
    views = shared_version.copy_views(tmp_path / "shared-views")
    iso = make_isolated(
        base_env,
        tmp_path,
        LAMBDASTACK_DATA__VIEWS_DIR=str(views),
        LAMBDASTACK_SPEED__FLINK_METRICS_PORT=str(free_ports(1)[0]),
        **SETTINGS_ENV,
    )
    s = iso.settings
    layout = VersionLayout(views)
    v1 = shared_version.versions[0]
    promote(layout, v1)
    snap1 = scoring_view.load(PublishedVersion(layout, v1))
    stopper.append(start_speed_job(iso, JOB_START_S))

    user = next(u for u in sorted(snap1.profiles) if snap1.history.get(u))  # has a batch profile
    unseen = [i for i in sorted(snap1.neighbours) if i not in snap1.history[user]]
    now = int(time.time() * 1000)
    types = ["view", "skip", "watch", "view", "rating", "click", "like"]
    values = [1.0, 1.0, 42.5, 1.0, 4.5, 1.0, 1.0]
    events = [
        Event(f"e{uuid.uuid4().hex}", user, unseen[k % len(unseen)], t, v, now - 60_000 + k * 1000)
        for k, (t, v) in enumerate(zip(types, values, strict=True))
    ]
    with EventProducer(s) as producer:
        for e in events:
            producer.send(e)
    r = redis_client.Redis(port=s.redis.port)
    keys = KeyLayout(s.redis.key_prefix)

    def fresh_after(event: Event) -> dict[bytes, bytes] | None:
        h = _user_hash(r, keys, user)
        f = decode_fresh(h.get(b"fresh"))
        return h if f is not None and f.event_time_ms == event.event_time_ms else None

    try:
        h = eventually(lambda: fresh_after(events[-1]), 90, "fresh candidates after the last event")
    except AssertionError as err:
        raise AssertionError(f"{err}\nspeed log:\n{stopper[0].log_tail(60)}") from None
    assert decode_recent(h[b"recent"]) == [
        Interaction(e.item_id, e.type, e.value, e.event_time_ms) for e in events[-RECENT_N:]
    ]
    fresh = decode_fresh(h[b"fresh"])
    assert fresh is not None and (fresh.view_version, fresh.model_version) == (v1, v1)
    expected = score(
        snap1, user, _entries(events), s.speed.fresh_n, s.speed.fresh_seeds, s.speed.fresh_neighbours_n
    )
    assert expected is not None and len(expected.items) > 0
    assert fresh == decode_fresh(h[b"fresh"]) and fresh.items == expected.items
    seeds = [events[-1].item_id, events[-2].item_id, events[-3].item_id]  # like, click, rating 4.5
    neighbours = {n for seed in seeds for n in snap1.neighbours[seed]}
    seen = snap1.history[user] | {e.item_id for e in events}
    assert all(i in neighbours and i not in seen for i, _ in fresh.items)
    assert events[-1].item_id in snap1.neighbours and fresh.items[0][0] in neighbours
    assert 0 < r.ttl(keys.user(user)) <= s.redis.signal_ttl_s
    # more interactions than `recent` holds: the seen set has every one, at its event time
    assert len(events) > RECENT_N
    everything = {e.item_id: e.event_time_ms for e in events}  # (a repeated item: its newest time)
    eventually(lambda: _seen_set(r, keys, user) == everything, 30, "every item in the seen set")
    assert 0 < r.ttl(keys.seen(user)) <= s.redis.signal_ttl_s

    # a second version is promoted: the running job scores with it, no restart
    v2 = _copy_as_new_version(layout, v1)
    promote(layout, v2)
    later: list[Event] = []

    def scored_by_v2() -> Event | None:
        e = Event(
            f"e{uuid.uuid4().hex}",
            user,
            unseen[len(later) % len(unseen)],
            "like",
            1.0,
            int(time.time() * 1000),
        )
        with EventProducer(s) as producer:
            producer.send(e)
        later.append(e)
        time.sleep(0.5)
        f = decode_fresh(_user_hash(r, keys, user).get(b"fresh"))
        return next(
            (x for x in later if f and f.view_version == v2 and f.event_time_ms == x.event_time_ms), None
        )

    trigger = eventually(scored_by_v2, 60, "a fresh record scored by the promoted version", interval_s=0.5)
    assert trigger is not None and stopper[0].running()
    snap2 = scoring_view.load(PublishedVersion(layout, v2))
    window = _entries(events + later[: later.index(trigger) + 1])
    assert (
        decode_fresh(_user_hash(r, keys, user)[b"fresh"]).items
        == score(  # type: ignore[union-attr]
            snap2, user, window, s.speed.fresh_n, s.speed.fresh_seeds, s.speed.fresh_neighbours_n
        ).items
    )  # type: ignore[union-attr]
    eventually(lambda: fresh_after(later[-1]), 30, "fresh candidates after the last event")
    for e in later:  # a repeated item keeps the time of its newest interaction
        everything[e.item_id] = e.event_time_ms
    eventually(lambda: _seen_set(r, keys, user) == everything, 30, "the later items in the seen set")
    # a version whose model is corrupt: scored on with v2, the failure in Flink's metrics
    after = _a_corrupt_model_keeps_the_version_in_use(s, r, keys, layout, user, unseen, v2)
    for e in after:
        everything[e.item_id] = e.event_time_ms
    eventually(lambda: fresh_after(after[-1]), 30, "fresh candidates after the last event")
    eventually(lambda: _seen_set(r, keys, user) == everything, 30, "those items in the seen set")
    before = _user_hash(r, keys, user)
    stopper.pop().stop(timeout_s=30)

    # replay: a new job from the earliest offset into a fresh prefix writes the same bytes
    tag = uuid.uuid4().hex[:8]
    replay_env = dict(iso.env)
    replay_env.update(
        {
            "LAMBDASTACK_REDIS__KEY_PREFIX": f"r{tag}",
            "LAMBDASTACK_TOPICS__USERS": f"r{tag}.users",
            "LAMBDASTACK_TOPICS__SIGNALS": f"r{tag}.signals",
            "LAMBDASTACK_TOPICS__DEAD_LETTER": f"r{tag}.dlq",
            "LAMBDASTACK_SPEED__CONSUMER_GROUP": f"r{tag}-speed",
            "LAMBDASTACK_SPEED__LOADER_GROUP": f"r{tag}-loader",
            "LAMBDASTACK_SPEED__USERS_GROUP": f"r{tag}-users",
        }
    )
    replay = Isolated(load_settings(environ=replay_env), replay_env, f"r{tag}")
    stopper.append(start_speed_job(replay, JOB_START_S))
    again = KeyLayout(f"r{tag}")
    eventually(lambda: _user_hash(r, again, user) == before, 90, "the replay writing the same bytes")
    eventually(lambda: _seen_set(r, again, user) == everything, 30, "the replay's seen set")
