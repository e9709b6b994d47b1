import pytest

from lambdastack.keys import KeyLayout, bucket_start
from lambdastack.speedview import buckets_since

pytestmark = pytest.mark.unit


def test_bucket_start_floors_to_the_bucket():
    assert bucket_start(3_600_000 * 5 + 17, 3600) == 3_600_000 * 5
    assert bucket_start(3_600_000 * 5, 3600) == 3_600_000 * 5


def test_key_layout():
    k = KeyLayout("ls")
    assert k.item("i1") == "ls:item:i1"
    assert k.bucket(7200000) == "ls:bucket:7200000"
    assert k.since(7200000) == "ls:since:7200000"
    assert KeyLayout.parse_item_field(KeyLayout.item_field(7200000, "view")) == (7200000, "view")


def test_buckets_since_starts_at_the_as_of_and_includes_the_next_bucket():
    hour = 3_600_000
    assert buckets_since(10 * hour, 12 * hour + 5, 3600, 48) == [10 * hour, 11 * hour, 12 * hour, 13 * hour]


def test_buckets_since_is_bounded():
    hour = 3_600_000
    got = buckets_since(0, 100 * hour, 3600, 3)
    assert got == [99 * hour, 100 * hour, 101 * hour]
