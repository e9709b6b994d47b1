"""A/B assignment: a deterministic hash of the user id puts a share of users on the challenger."""

from __future__ import annotations

import hashlib

CONTROL = "control"
CHALLENGER = "challenger"


def bucket(user_id: str, salt: str) -> float:
    """A stable number in [0, 1) for the user (sha256 of salt and id, so it is uniform)."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def variant(user_id: str, share: float, salt: str) -> str:
    """CHALLENGER for about `share` of all user ids, always the same for one id, else CONTROL."""
    return CHALLENGER if share > 0 and bucket(user_id, salt) < share else CONTROL
