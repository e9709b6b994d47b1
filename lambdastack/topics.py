"""Kafka topics of the platform and how records on them are keyed.

- events (`topics.events`): wire events (lambdastack.events), key = user_id.
- dead letter (`topics.dead_letter`): {"reason", "payload", "source"} where source is
  "kafka:<topic>" (then with "partition" and "offset" of the source record) or "<file>:<line>".
- signals (`topics.signals`): speed-layer upserts, key = {"item_id", "bucket_ms"} as JSON, value =
  {"cnt": all types, "<type>": n per event type, "max_event_ms": newest event counted} (absolute,
  never a delta) or a tombstone.
  Other shapes carry a `kind` in the key: "min" (item × minute counts, same value), "trend" (the
  ranked items of one closed trending window), "drift" (feature-bin counts of one window);
  speed/loader.py turns each into absolute Redis writes.
- users (`topics.users`): user state upserts of speed/users.py, key = {"user_id", "field"} as JSON
  (field `recent` or `fresh`, the fields of `{p}:user:{user_id}`, or `seen:{item_id}`, a member
  of `{p}:user:{user_id}:seen`), value = {..., "payload": str} (absolute: the user's last
  interactions, the encoded FreshCandidates, or the event time in epoch ms of the user's
  interaction with the item) or a tombstone.
"""

from __future__ import annotations

from dataclasses import dataclass

from lambdastack.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the stack creates on start."""
    t = settings.topics
    return [
        TopicSpec(t.events, settings.kafka.partitions, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
        TopicSpec(t.dead_letter, 1, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
        TopicSpec(t.signals, settings.kafka.partitions, {"cleanup.policy": "compact"}),
        TopicSpec(t.users, settings.kafka.partitions, {"cleanup.policy": "compact"}),
    ]
