import pytest

from lambdastack.keys import KeyLayout
from lambdastack.usersignals import (
    FreshCandidates,
    Interaction,
    decode_fresh,
    decode_recent,
    encode_fresh,
    encode_recent,
)

pytestmark = pytest.mark.unit


def test_recent_round_trips_and_is_byte_stable():
    recent = [Interaction("i1", "view", 0.0, 1000), Interaction("i2", "rating", 4.5, 2000)]
    raw = encode_recent(recent)
    assert decode_recent(raw) == recent
    assert encode_recent(decode_recent(raw.encode())) == raw
    assert decode_recent(None) == []


def test_fresh_round_trips():
    fresh = FreshCandidates("v000002", "v000002", 5000, (("a", 0.9), ("b", 0.25)))
    assert decode_fresh(encode_fresh(fresh)) == fresh
    assert decode_fresh(b"") is None


def test_user_and_trending_keys_share_the_prefix():
    keys = KeyLayout("ls")
    assert keys.user("u1") == "ls:user:u1"
    assert keys.item_minutes("i1") == "ls:item:i1:min"
    assert keys.trending(60000) == "ls:trending:60000"
    assert keys.trending_latest() == "ls:trending:latest"
    assert keys.drift() == "ls:drift"
