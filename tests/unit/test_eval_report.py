"""`lambdastack report`: renders the JSON files that exist, plots them, names the missing ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.cli import main
from tools.evaluation.metrics import Scoreboard
from tools.evaluation.report import eval_table, eval_targets, render, source_table

pytestmark = pytest.mark.unit


def eval_result() -> dict:
    board = Scoreboard(3, ("known", "new"))
    for variant, ranks in {
        "popularity": [None, 2],
        "batch_only": [2, None],
        "speed_only": [1, None],
        "merged": [0, 1],
        "item_knn": [0, None],
    }.items():
        board.add(variant, "known", ranks[0], 0.001, 1_700_000_000_000)
        board.add(variant, "new", ranks[1], 0.003, 1_700_000_100_000)
    board.recommended("merged", ["a", "b", "c"], [("trending",), ("knn", "trending"), ("knn",)])
    board.recommended("item_knn", ["a", "d"])
    return {
        "benchmark": "eval",
        "dataset": "/data/ml",
        "split": 0.8,
        "k": 3,
        "as_of_ms": 1_699_999_200_000,
        "bucket_s": 3600,
        "events": {"total": 10, "history": 8, "replayed": 2},
        "limit": None,
        "version": "v000001",
        "variants": board.summary(catalogue=8),
        "wall_s": 1.0,
        "measured_at": "2026-11-28T17:00:00Z",
    }


def test_eval_table_has_every_variant_and_segment():
    table = eval_table(eval_result())
    assert "| merged | all | 2 | 1.0000 |" in table
    assert "| speed_only | new | 1 | 0.0000 | 0.0000 | 2.00 |" in table
    assert "| item_knn | all | 2 | 0.5000 | 0.5000 | 2.00 | 0.2500 |" in table  # a, d of 8
    assert table.count("\n") == 1 + 5 * 3


def test_source_table_gives_each_source_its_share_of_places():
    assert source_table(eval_result()).splitlines() == [
        "| variant | knn | trending |",
        "|---|---:|---:|",
        "| merged | 0.667 | 0.667 |",
    ]


def test_targets_compare_merged_with_every_variant_and_the_lift():
    targets = {t: (ok, m) for t, ok, m in eval_targets(eval_result())}
    assert targets["merged > batch_only in NDCG@3 (all)"][0] is True
    assert targets["merged > popularity in NDCG@3 (new)"][0] is True  # 0.63 vs 0.5
    assert targets["merged > item_knn in HR@3 (known)"] == (False, "1.0000 vs 1.0000")
    assert targets["merged > item_knn in NDCG@3 (new)"][0] is True
    assert targets["merged NDCG@3 >= 0.045 (all; the ml-latest-small target)"][0] is True
    lift_ok, lift = targets["merged NDCG@3 >= 2.5 x batch_only (all)"]
    assert lift_ok is True and lift == "3.26x"  # (1 + 0.63) / 0.5


def test_render_writes_what_exists_and_names_what_is_missing(tmp_path: Path):
    (tmp_path / "eval.json").write_text(json.dumps(eval_result()))
    serving = {
        "connections": {
            "1": {
                "feed": {"rps": 900, "p50_ms": 1.0, "p99_ms": 3.0},
                "trivial": {"rps": 4000, "p50_ms": 0.2, "p99_ms": 0.5},
                "feed_over_trivial_rps": 0.22,
            },
            "8": {
                "feed": {"rps": 1200, "p50_ms": 6.0, "p99_ms": 20.0},
                "trivial": {"rps": 8000, "p50_ms": 0.8, "p99_ms": 2.5},
                "feed_over_trivial_rps": 0.15,
            },
        },
        "version_load": {"load_s": 2.7, "users": 42133},
    }
    (tmp_path / "serving.json").write_text(json.dumps(serving))
    speed = {
        "summary": [
            {
                "rate": 1000.0,
                "throughput_eps": 990.0,
                "freshness_ms": {"p50": 80.0, "p95": 200.0, "p99": 400.0},
                "backlog_max": 12,
                "all_complete": True,
            }
        ]
    }
    (tmp_path / "speed.json").write_text(json.dumps(speed))
    assert main(["report", "--results", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "## Evaluation: prequential replay" in report and "| merged | known |" in report
    assert "| 8 | 1200 | 6.0 | 20.0 | 8000 | 0.15 |" in report
    assert "- `version_load.load_s`: 2.7" in report
    assert "| 1000.0 | 990.0 | 80.0 | 200.0 | 400.0 | 12 | True |" in report
    assert "`batch.json`" in report.split("## Missing")[1]
    for png in (
        "eval_metrics_at_k.png",
        "eval_ndcg_over_time.png",
        "serving_latency.png",
        "speed_freshness.png",
    ):
        assert (tmp_path / png).stat().st_size > 1000, png


def test_render_of_an_empty_folder_lists_every_file(tmp_path: Path):
    out, missing = render(tmp_path / "results")
    assert missing == ["batch.json", "speed.json", "serving.json", "eval.json"]
    assert "## Missing" in out.read_text()


def test_eval_replay_rejects_a_bad_k(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["eval", "replay", str(tmp_path), "--json", str(tmp_path / "e.json"), "--k", "0"]) == 1
    assert "--k must be at least 1" in capsys.readouterr().err


def test_speed_samples_give_a_histogram_per_rate(tmp_path: Path):
    runs = [
        {"rate": 1000.0, "freshness_samples_ms": [5, 7, 9, 30]},
        {"rate": 1000.0, "freshness_samples_ms": [6, 8]},
        {"rate": 10000.0, "freshness_samples_ms": [50, 700, 9000]},
    ]
    (tmp_path / "speed.json").write_text(json.dumps({"runs": runs}))
    out, _ = render(tmp_path)
    assert "![freshness histogram per rate](speed_freshness.png)" in out.read_text()
    assert (tmp_path / "speed_freshness.png").stat().st_size > 1000
    from tools.evaluation.report import _samples_by_rate

    assert _samples_by_rate({"runs": runs}) == {
        "1000.0 events/s": [5.0, 7.0, 9.0, 30.0, 6.0, 8.0],
        "10000.0 events/s": [50.0, 700.0, 9000.0],
    }


def test_a_sample_list_under_another_name_still_gives_a_histogram(tmp_path: Path):
    (tmp_path / "speed.json").write_text(json.dumps({"freshness": [5, 7, 9, 30]}))
    out, _ = render(tmp_path)
    assert "![freshness histogram](speed_freshness.png)" in out.read_text()


def test_replays_with_different_retrains_are_compared_in_a_table_and_a_plot(tmp_path: Path):
    folder = tmp_path / "retrains"
    folder.mkdir()
    for n, (k, merged_rank) in enumerate(((0, 2), (4, 1), (16, 0))):
        result = eval_result()
        board = Scoreboard(3, ("known", "new"))
        for variant, rank in (("batch_only", 2), ("merged", merged_rank)):
            board.add(variant, "known", rank, 0.001, 1_700_000_000_000)
        result["variants"] = board.summary(catalogue=8)
        result["retrains"] = {"k": k, "every_days": 900 / (k + 1) if k else None, "build_s": 140.0 * k}
        (folder / f"run{n}.json").write_text(json.dumps(result))
    out, _ = render(tmp_path)
    report = out.read_text()
    section = report.split("batch cadence against the speed layer", 1)[1]
    assert "| 0 |  | 0.5000 | 1.0000 | 0.5000 | 1.0000 | 1 | 0.0 | 1.0 |" in section
    assert "| 16 | 52.9 | 0.5000 | 1.0000 | 1.0000 | 1.0000 | 1 | 2240.0 | 1.0 |" in section
    assert "| merged NDCG@3 with 16 retrains >= with none | yes | 1.0000 vs 0.5000 |" in section
    assert (tmp_path / "eval_retrains.png").stat().st_size > 1000
    assert "retrains" not in " ".join(render(tmp_path / "empty")[1])  # optional: never missing


def test_a_soak_gets_a_table_of_memory_growth_and_a_plot(tmp_path: Path):
    samples = [(10.0 * n, 200.0 + n) for n in range(13)]
    soak = {
        "config": {"minutes": 2, "warmup_minutes": 1},
        "machine": {"load_avg_1m_at_start": 0.4},
        "seconds": 120.1,
        "feeds": {
            "per_s": 199.8,
            "requests": 23976,
            "statuses": {"200": 23976},
            "latency_ms": {"p50": 2.5, "p99": 9.1},
            "api_cpu_ms_per_feed": 1.4,
        },
        "events": {
            "per_s": 999.9,
            "events_sent": 119988,
            "counts_exact": True,
            "archived": 119988,
            "archived_distinct": 119988,
            "speed_cpu_us_per_event": 950.0,
        },
        "processes": [
            {
                "role": "api",
                "rss_at_warmup_mb": 206.0,
                "rss_max_after_mb": 212.0,
                "growth": 0.0291,
                "samples": samples,
            },
            {
                "role": "speed_run.tee",
                "rss_at_warmup_mb": 1.6,
                "rss_max_after_mb": 1.6,
                "growth": 0.0,
                "samples": [],
            },
        ],
        "targets": {"server_errors": {"measured": 0, "target": 0, "met": True}},
    }
    (tmp_path / "soak.json").write_text(json.dumps(soak))
    out, missing = render(tmp_path)
    section = out.read_text().split("## Soak", 1)[1]
    assert "`lambdastack bench soak --minutes 2 --json bench/results/soak.json`" in section
    assert "| api | 206.0 | 212.0 | 2.9% |" in section and "| speed_run.tee | 1.6 | 1.6 | 0.0% |" in section
    assert "counts exact True, archived 119988 (119988 distinct)" in section
    assert (tmp_path / "soak_rss.png").stat().st_size > 1000 and "soak.json" not in missing
    assert "soak" not in " ".join(render(tmp_path / "empty")[1])  # optional: never missing
