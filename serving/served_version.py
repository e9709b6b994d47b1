"""The version a request reads: a batch version's views, its model and the A/B challenger's,
immutable. The API holds one reference and replaces it whole when CURRENT moves, so a request
that took the reference sees exactly one version from start to end."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lambdastack import candidate_features
from lambdastack.model import Ranker
from lambdastack.published import PublishedVersion
from lambdastack.settings import ABSettings
from serving import batch_view
from serving.abtest import CHALLENGER, CONTROL, variant
from serving.batch_view import BatchView

log = logging.getLogger("lambdastack.serving")


@dataclass(frozen=True)
class ServedVersion:
    view: BatchView
    ranker: Ranker | None  # the model published with the view's version
    challenger: Ranker | None = None
    ab_share: float = 0.0
    ab_salt: str = ""
    # per-user work derived from `view` once (serving.feed.batch_side); filled by requests
    batch_sides: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def empty() -> ServedVersion:
        return ServedVersion(BatchView.empty(), None)

    @property
    def version(self) -> str | None:
        return self.view.version

    def ranker_for(self, user_id: str) -> tuple[str, Ranker | None]:
        """The user's A/B variant and the model that ranks for it."""
        if self.challenger is not None and variant(user_id, self.ab_share, self.ab_salt) == CHALLENGER:
            return CHALLENGER, self.challenger
        return CONTROL, self.ranker


def _challenger(published: PublishedVersion, ab: ABSettings) -> Ranker | None:
    if not ab.enabled or ab.challenger_version is None or ab.challenger_version == published.version:
        return None
    challenger = PublishedVersion(published.layout, ab.challenger_version)
    ranker = challenger.ranker()
    if ranker is None:
        log.warning(
            "A/B challenger %s has no model at %s; serving control only",
            ab.challenger_version,
            challenger.layout.model_file(challenger.version),
        )
    return ranker


def load(published: PublishedVersion, ab: ABSettings) -> ServedVersion:
    """A version's views and model (and the challenger's model)."""
    view = batch_view.load(published)
    candidate_features.warm()
    ranker = published.ranker()
    challenger = _challenger(published, ab)
    return ServedVersion(view, ranker, challenger, ab.share if challenger else 0.0, ab.salt)
