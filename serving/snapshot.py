"""What one request reads: an immutable snapshot of a batch version, its model and the A/B
challenger's. The app holds one reference and replaces it whole when CURRENT moves, so a request
that took the reference sees exactly one version from start to end."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lambdastack.settings import ABSettings
from lambdastack.versions import VersionLayout
from serving import batch_view
from serving.abtest import CHALLENGER, CONTROL, variant
from serving.batch_view import BatchView
from serving.model import Ranker, load_ranker

log = logging.getLogger("lambdastack.serving")


@dataclass(frozen=True)
class Snapshot:
    view: BatchView
    ranker: Ranker | None  # the model published with the view's version
    challenger: Ranker | None = None
    ab_share: float = 0.0
    ab_salt: str = ""
    # per-user work derived from `view` once (serving.feed.batch_side); filled by requests
    batch_sides: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def empty() -> Snapshot:
        return Snapshot(BatchView.empty(), None)

    @property
    def version(self) -> str | None:
        return self.view.version

    def ranker_for(self, user_id: str) -> tuple[str, Ranker | None]:
        """The user's A/B variant and the model that ranks for it."""
        if self.challenger is not None and variant(user_id, self.ab_share, self.ab_salt) == CHALLENGER:
            return CHALLENGER, self.challenger
        return CONTROL, self.ranker


def _challenger(layout: VersionLayout, ab: ABSettings, current: str) -> Ranker | None:
    if not ab.enabled or ab.challenger_version is None or ab.challenger_version == current:
        return None
    model = layout.version_dir(ab.challenger_version) / "model" / "ranker.onnx"
    if not model.is_file():
        log.warning(
            "A/B challenger %s has no model at %s; serving control only", ab.challenger_version, model
        )
        return None
    return load_ranker(model.read_bytes(), ab.challenger_version)


def build(layout: VersionLayout, version: str, ab: ABSettings) -> Snapshot:
    """Load a version's views and model (and the challenger's model) into a new snapshot."""
    view = batch_view.load(layout, version)
    ranker = load_ranker(view.model, version) if view.model is not None else None
    challenger = _challenger(layout, ab, version)
    return Snapshot(view, ranker, challenger, ab.share if challenger else 0.0, ab.salt)
