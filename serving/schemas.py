"""Request and response bodies of the API, as they appear in its OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lambdastack.events import KEY_ID_PATTERN

ID_PATTERN = KEY_ID_PATTERN
ID_RE = re.compile(ID_PATTERN)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(_Out):
    detail: Any
    request_id: str | None = None


class FeedItemOut(_Out):
    item_id: str
    title: str | None
    genre: str | None
    score: float = Field(description="P(positive) from the ranking model, or merged popularity without one")
    count: int = Field(description="events before the as-of plus events since (no double counting)")
    batch_count: int
    speed_count: int
    sources: list[str]


class FeedOut(_Out):
    user_id: str
    items: list[FeedItemOut]
    view_version: str | None
    model_version: str | None
    variant: str
    as_of_ms: int
    degraded: bool
    cold_start: bool
    signal_age_ms: int | None = Field(description="age of the freshest speed signal used (null: none)")
    candidates: int


class ItemOut(_Out):
    item_id: str
    title: str | None
    genres: list[str]
    count: int
    batch_count: int
    speed_count: int
    speed_by_type: dict[str, int]
    windows: dict[str, dict[str, int]] = Field(description="events per type in the last 1m / 10m / 1h")
    view_version: str | None
    degraded: bool


class TrendingItemOut(_Out):
    item_id: str
    title: str | None
    score: float


class TrendingOut(_Out):
    window_end_ms: int | None
    items: list[TrendingItemOut]
    degraded: bool


class InteractionOut(_Out):
    item_id: str
    type: str
    value: float
    event_time_ms: int


class ProfileOut(_Out):
    user_id: str
    view_version: str | None
    known_to_batch: bool
    batch: dict[str, Any] | None
    recent: list[InteractionOut]
    fresh: dict[str, Any] | None
    merged: dict[str, Any]
    degraded: bool


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: list[dict[str, Any]] = Field(min_length=1, description="at most serving.predict_instances_max")


class PredictionOut(_Out):
    score: float | None = None
    error: str | None = None


class PredictOut(_Out):
    predictions: list[PredictionOut]
    model_version: str | None
    view_version: str | None
    degraded: bool


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[dict[str, Any]] = Field(min_length=1, max_length=500)


class EventsOut(_Out):
    accepted: int
    event_ids: list[str]
    topic: str


class VersionOut(_Out):
    code_version: str
    view_version: str | None
    model_version: str | None
    challenger_version: str | None
    as_of_ms: int


class ReadyOut(_Out):
    ready: bool
    checks: dict[str, bool]
