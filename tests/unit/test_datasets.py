import pyarrow.compute as pc
import pytest

from lambdastack.errors import DataError
from lambdastack.events import validate
from lambdastack.master import append, read, read_catalogue, write_catalogue
from tools.datasets.movielens import read_folder
from tools.datasets.synthetic import generate

pytestmark = pytest.mark.unit


def _ml_latest(folder):
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        "1,10,4.0,964982703\n"
        "1,20,9.0,964982224\n"  # line 3: bad rating
        "2,10,3.5,1445714835\n"
        ",30,3.0,1445714835\n"  # line 5: no user
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        '10,"Toy Story (1995)",Adventure|Animation\n'
        "20,Jumanji (1995),(no genres listed)\n"
    )
    (folder / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,10,Pixar,1\n2,10,pixar,2\n2,10,fun,3\n")
    return folder


def test_ml_latest_csvs(tmp_path):
    data = read_folder(_ml_latest(tmp_path / "ml"))
    assert data.source_format == "csv"
    rows = data.events.to_pylist()
    assert [(r["user_id"], r["item_id"], r["value"]) for r in rows] == [("1", "10", 4.0), ("2", "10", 3.5)]
    assert rows[0]["event_id"] == "ml-1-10-964982703" and rows[0]["type"] == "rating"
    assert data.rejected == [(3, "rating must be a number between 0 and 5"), (5, "user id is empty")]
    items = {r["item_id"]: r for r in data.items.to_pylist()}
    assert items["10"]["genres"] == ["Adventure", "Animation"]
    assert items["10"]["tags"] == []  # tags are dated: the batch layer adds those before its as-of
    assert items["20"]["genres"] == []
    tags = [(r["item_id"], r["tag"], int(r["tagged_at"].timestamp() * 1000)) for r in data.tags.to_pylist()]
    assert tags == [("10", "pixar", 1000), ("10", "pixar", 2000), ("10", "fun", 3000)]


def test_dated_tags_are_written_once_each(tmp_path):
    from lambdastack.master import read_tags, write_tags

    data = read_folder(_ml_latest(tmp_path / "ml"))
    write_tags(data.tags, tmp_path / "catalogue")
    write_tags(data.tags.slice(0, 2), tmp_path / "catalogue")  # loaded again: nothing doubles
    rows = read_tags(tmp_path / "catalogue").to_pylist()
    assert [(r["tag"], int(r["tagged_at"].timestamp())) for r in rows] == [
        ("pixar", 1),
        ("pixar", 2),
        ("fun", 3),
    ]
    assert read_tags(tmp_path / "nothing").num_rows == 0


def test_ml_100k_tab_separated(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    flags = "|".join(["0", "0", "0", "1"] + ["0"] * 15)
    (folder / "u.item").write_text(f"242|Kolya (1996)|24-Jan-1997||http://x|{flags}\n")
    data = read_folder(folder)
    assert data.source_format == "tsv"
    assert data.events.num_rows == 2
    assert data.items.to_pylist()[0] == {
        "item_id": "242",
        "title": "Kolya (1996)",
        "genres": ["Animation"],
        "tags": [],
    }


def test_a_folder_that_is_not_movielens_is_a_sentence(tmp_path):
    with pytest.raises(DataError, match="neither ratings.csv"):
        read_folder(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        read_folder(tmp_path / "missing")


def test_synthetic_world_is_deterministic_and_valid():
    a, items = generate(n_users=50, n_items=30, n_events=4000, seed=3)
    b, _ = generate(n_users=50, n_items=30, n_events=4000, seed=3)
    assert a.equals(b)
    assert a.num_rows == 4000 and items.num_rows == 30
    times = a["event_time"].cast("int64").to_numpy()
    assert (times[1:] >= times[:-1]).all()
    assert len(set(a["event_id"].to_pylist())) == 4000
    for row in a.slice(0, 200).to_pylist():
        wire = {**row, "event_time": row["event_time"].isoformat()}
        assert validate(wire)[1] == []
    counts = pc.value_counts(a["item_id"]).to_pylist()
    top = max(counts, key=lambda c: c["counts"])
    assert top["counts"] >= 4000 * 0.03  # the viral item


def test_master_append_is_partitioned_by_date_and_reads_back(tmp_path):
    events, items = generate(n_users=10, n_items=5, n_events=300, seed=1, days=3)
    assert append(events, tmp_path / "m") == 300
    assert len(list((tmp_path / "m").glob("event_date=*"))) >= 3
    assert not list((tmp_path / "m").glob("_staging/*"))
    append(events, tmp_path / "m")  # a second load of the same events: duplicates on disk, removed on read
    back = read(tmp_path / "m")
    assert back.num_rows == 600
    assert set(back["event_id"].to_pylist()) == set(events["event_id"].to_pylist())


def test_catalogue_upserts(tmp_path):
    _, items = generate(n_users=10, n_items=5, n_events=100, seed=1)
    write_catalogue(items, tmp_path)
    write_catalogue(items.slice(0, 2), tmp_path)
    assert sorted(read_catalogue(tmp_path)["item_id"].to_pylist()) == sorted(items["item_id"].to_pylist())
