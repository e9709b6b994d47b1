"""A synthetic world that needs no files: users with latent tastes, items with topics and tags,
sessions, a viral item that bursts late in the timeline, and one bot-like user hammering one item.
Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lambdastack.tables import ITEMS_SCHEMA, events_table

TOPICS = {
    "comedy": ["standup", "sketch", "prank", "parody", "satire"],
    "music": ["cover", "live", "remix", "guitar", "dance"],
    "sports": ["football", "climbing", "running", "skate", "highlights"],
    "cooking": ["recipe", "baking", "streetfood", "vegan", "bbq"],
    "gaming": ["speedrun", "esports", "retro", "walkthrough", "mods"],
    "travel": ["hiking", "citywalk", "roadtrip", "beach", "vanlife"],
    "science": ["space", "physics", "diy", "robots", "chemistry"],
    "pets": ["cats", "dogs", "parrots", "aquarium", "rescue"],
}
TYPES = np.array(["view", "click", "like", "share", "skip", "watch", "rating"])
TYPE_P = np.array([0.55, 0.15, 0.10, 0.03, 0.10, 0.05, 0.02])
SESSION_MEAN = 8
SESSION_FOCUS = 0.8  # share of a session's events on its one topic (drawn by taste); the rest by taste
DAY_MS = 86_400_000


@dataclass
class World:
    """Latent structure the events are drawn from."""

    taste_cum: np.ndarray  # (users, topics) cumulative taste
    activity_cum: np.ndarray  # (users,) cumulative activity
    item_topic: np.ndarray  # (items,)
    topic_items: list[np.ndarray]
    topic_pop_cum: list[np.ndarray]
    viral_item: int
    bot_user: int
    bot_item: int

    @property
    def n_users(self) -> int:
        return len(self.activity_cum)


def make_world(n_users: int, n_items: int, seed: int) -> World:
    rng = np.random.default_rng(seed)
    k = len(TOPICS)
    taste = rng.dirichlet(np.full(k, 0.3), size=n_users)
    activity = rng.lognormal(0.0, 1.0, size=n_users)
    item_topic = rng.integers(0, k, size=n_items)
    pop = 1.0 / np.power(rng.permutation(n_items) + 1.0, 0.8)
    topic_items = [np.flatnonzero(item_topic == t) for t in range(k)]
    topic_pop_cum = [np.cumsum(pop[idx]) / pop[idx].sum() if len(idx) else np.ones(0) for idx in topic_items]
    viral = int(rng.integers(0, n_items))
    return World(
        taste_cum=np.cumsum(taste, axis=1),
        activity_cum=np.cumsum(activity) / activity.sum(),
        item_topic=item_topic,
        topic_items=topic_items,
        topic_pop_cum=topic_pop_cum,
        viral_item=viral,
        bot_user=int(rng.integers(0, n_users)),
        bot_item=int((viral + 1) % n_items),
    )


def items_table(world: World, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed + 1)
    names = list(TOPICS)
    rows_tags, rows_titles = [], []
    for i, t in enumerate(world.item_topic):
        vocab = TOPICS[names[t]]
        chosen = sorted(set(rng.choice(vocab, size=2, replace=True).tolist()))
        rows_tags.append(chosen)
        rows_titles.append(f"{names[t].title()} #{i}: {' '.join(chosen)}")
    n = len(world.item_topic)
    return pa.table(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "title": rows_titles,
            "genres": [[names[t]] for t in world.item_topic],
            "tags": rows_tags,
        },
        schema=ITEMS_SCHEMA,
    )


def _taste_topics(world: World, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One topic per user, drawn by the user's taste."""
    u = rng.random(len(users))
    return np.asarray((world.taste_cum[users] < u[:, None]).sum(axis=1).clip(0, len(world.topic_items) - 1))


def sample_items(
    world: World, users: np.ndarray, rng: np.random.Generator, topics: np.ndarray | None = None
) -> np.ndarray:
    """One item per user, drawn by item popularity within a topic: `topics` where given (>= 0),
    else one drawn by the user's taste. Sessions are mostly about one topic, as people watch."""
    drawn = _taste_topics(world, users, rng)
    topics = drawn if topics is None else np.where(topics >= 0, topics, drawn)
    out = np.empty(len(users), dtype=np.int64)
    for t in np.unique(topics):
        sel = np.flatnonzero(topics == t)
        idx = world.topic_items[t]
        if len(idx) == 0:
            out[sel] = rng.integers(0, len(world.item_topic), size=len(sel))
            continue
        pick = np.searchsorted(world.topic_pop_cum[t], rng.random(len(sel))).clip(0, len(idx) - 1)
        out[sel] = idx[pick]
    return out


def sample_types(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    types = TYPES[np.searchsorted(np.cumsum(TYPE_P), rng.random(n)).clip(0, len(TYPES) - 1)]
    value = np.ones(n)
    watch = types == "watch"
    value[watch] = np.round(rng.exponential(30.0, size=int(watch.sum())), 1)
    rating = types == "rating"
    value[rating] = rng.integers(1, 11, size=int(rating.sum())) / 2.0
    return types, value


def generate(
    n_users: int = 1000,
    n_items: int = 500,
    n_events: int = 100_000,
    seed: int = 7,
    start_ms: int = 1_767_225_600_000,
    days: int = 30,
) -> tuple[pa.Table, pa.Table]:
    """Events (sorted by time) and the item catalogue of a fresh world."""
    rng = np.random.default_rng(seed)
    world = make_world(n_users, n_items, seed)
    span = days * DAY_MS
    n_viral = n_events * 3 // 100
    n_bot = n_events // 200
    n_organic = n_events - n_viral - n_bot
    # organic: sessions of users by activity, events ~30 s apart within a session
    n_sessions = max(1, n_organic // SESSION_MEAN)
    s_users = np.searchsorted(world.activity_cum, rng.random(n_sessions)).clip(0, n_users - 1)
    s_start = rng.integers(0, span, size=n_sessions)
    s_of = np.sort(rng.integers(0, n_sessions, size=n_organic))
    gaps = rng.exponential(30_000.0, size=n_organic)
    first = np.r_[True, s_of[1:] != s_of[:-1]]
    gaps[first] = 0.0
    offsets = np.cumsum(gaps)
    session_base = np.maximum.accumulate(np.where(first, offsets, 0.0))
    times = s_start[s_of] + (offsets - session_base).astype(np.int64)
    users = s_users[s_of]
    session_topic = _taste_topics(world, s_users, rng)[s_of]
    focused = rng.random(n_organic) < SESSION_FOCUS
    items = sample_items(world, users, rng, np.where(focused, session_topic, -1))
    # the viral item: many users within two hours, late in the timeline
    v_start = int(span * 0.9)
    times = np.r_[times, v_start + rng.integers(0, 2 * 3_600_000, size=n_viral)]
    users = np.r_[users, rng.integers(0, n_users, size=n_viral)]
    items = np.r_[items, np.full(n_viral, world.viral_item)]
    # the bot: one user, one item, ten minutes
    b_start = int(span * 0.5)
    times = np.r_[times, b_start + rng.integers(0, 600_000, size=n_bot)]
    users = np.r_[users, np.full(n_bot, world.bot_user)]
    items = np.r_[items, np.full(n_bot, world.bot_item)]
    types, value = sample_types(len(times), rng)
    order = np.argsort(times, kind="stable")
    n = len(order)
    events = events_table(
        {
            "event_id": [f"syn{seed}-{i}" for i in range(n)],
            "user_id": np.char.add("u", users[order].astype(str)).tolist(),
            "item_id": np.char.add("i", items[order].astype(str)).tolist(),
            "type": types[order].tolist(),
            "value": value[order].tolist(),
            "event_time": (start_ms + times[order]).tolist(),
        }
    )
    return events, items_table(world, seed)
