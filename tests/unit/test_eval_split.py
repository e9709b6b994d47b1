import pyarrow as pa
import pytest

from lambdastack.errors import DataError
from lambdastack.events import Event
from lambdastack.tables import events_table
from tools.evaluation.split import events_from_table, segment, split_events, time_ordered

pytestmark = pytest.mark.unit
H = 3_600_000


def ev(n: int, t: int, user: str = "u") -> Event:
    return Event(f"e{n}", user, f"i{n}", "rating", 4.0, t)


def test_time_order_is_stable_for_ties():
    events = [ev(0, 5), ev(1, 1), ev(2, 5), ev(3, 1)]
    assert [e.event_id for e in time_ordered(events)] == ["e1", "e3", "e0", "e2"]


def test_history_is_strictly_before_the_bucket_aligned_cut():
    # ten events, one per half hour: the cut event (index 8) is at 4h, aligned to 4h
    events = [ev(n, n * H // 2) for n in range(10)]
    sp = split_events(list(reversed(events)), 0.8, 3600)
    assert sp.as_of_ms == 4 * H
    assert [e.event_id for e in sp.history] == [f"e{n}" for n in range(8)]
    assert [e.event_id for e in sp.test] == ["e8", "e9"]
    assert sp.history_share == 0.8


def test_the_cut_bucket_goes_to_the_test_stream():
    # the cut event lies inside a bucket that also holds earlier events
    events = [ev(0, 0), ev(1, H), ev(2, H + 10), ev(3, H + 20), ev(4, 2 * H)]
    sp = split_events(events, 0.6, 3600)  # index 3 at H+20 -> as-of H
    assert sp.as_of_ms == H
    assert [e.event_id for e in sp.history] == ["e0"]
    assert [e.event_id for e in sp.test] == ["e1", "e2", "e3", "e4"]


def test_split_rejects_bad_fractions_and_empty_history():
    events = [ev(0, 10), ev(1, 20)]
    with pytest.raises(DataError, match="split must be between 0 and 1"):
        split_events(events, 1.0, 3600)
    with pytest.raises(DataError, match="no event lies before"):
        split_events(events, 0.5, 3600)  # both in the first bucket


def test_events_from_table_keeps_ids_types_and_times():
    table = events_table(
        {
            "event_id": ["a", "b"],
            "user_id": ["1", "2"],
            "item_id": ["10", "20"],
            "type": ["rating", "rating"],
            "value": [3.5, 5.0],
            "event_time": [1000, 2000],
        }
    )
    assert isinstance(table, pa.Table)
    assert events_from_table(table) == [
        Event("a", "1", "10", "rating", 3.5, 1000),
        Event("b", "2", "20", "rating", 5.0, 2000),
    ]


def test_segment_by_history():
    assert segment("a", {"a"}) == "known"
    assert segment("b", {"a"}) == "new"


def test_both_movielens_formats_split_alike(tmp_path):
    from tools.datasets.movielens import read_folder

    rows = [
        ("1", "10", "4", "100"),
        ("2", "10", "3", "50"),
        ("1", "11", "5", "7300"),
        ("3", "12", "2", "9000"),
    ]
    csv_dir, tsv_dir = tmp_path / "latest", tmp_path / "old"
    csv_dir.mkdir()
    tsv_dir.mkdir()
    (csv_dir / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "".join(",".join(r) + "\n" for r in rows)
    )
    (tsv_dir / "u.data").write_text("".join("\t".join(r) + "\n" for r in rows))
    splits = [split_events(events_from_table(read_folder(d).events), 0.5, 3600) for d in (csv_dir, tsv_dir)]
    for sp in splits:
        assert sp.as_of_ms == 7_200_000  # the third rating (7300 s) floored to the hour
        assert [(e.user_id, e.item_id) for e in sp.history] == [("2", "10"), ("1", "10")]
        assert [(e.user_id, e.item_id, e.value) for e in sp.test] == [("1", "11", 5.0), ("3", "12", 2.0)]
    assert splits[0] == splits[1]
