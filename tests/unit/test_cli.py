import subprocess
import sys

import pytest

from tools.cli import main

pytestmark = pytest.mark.unit

COMMANDS = [
    [],
    ["up"],
    ["down"],
    ["stack"],
    ["stack", "up"],
    ["stack", "status"],
    ["stack", "fetch"],
    ["data"],
    ["data", "load", "movielens"],
    ["data", "generate"],
    ["produce"],
    ["batch"],
    ["batch", "run"],
    ["speed"],
    ["speed", "run"],
    ["serve"],
    ["registry"],
    ["registry", "list"],
    ["registry", "show"],
    ["doctor"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "lambdastack")
def test_help_everywhere(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    assert "usage: lambdastack" in capsys.readouterr().out


def test_batch_run_without_data_is_a_sentence_not_a_stack_trace(tmp_path):
    env = {"LAMBDASTACK_DATA__MASTER_DIR": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "tools", "batch", "run"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert done.stderr.startswith("lambdastack: the master dataset")
    assert "does not exist; load data first" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_as_of_names_the_option(tmp_path, capsys):
    assert main(["batch", "run", "--as-of", "tomorrow"]) == 1
    assert "--as-of: 'tomorrow' is not an RFC 3339 timestamp" in capsys.readouterr().err


def test_registry_on_an_empty_views_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAMBDASTACK_DATA__VIEWS_DIR", str(tmp_path))
    assert main(["registry", "list"]) == 0
    assert "no version published yet" in capsys.readouterr().out
    assert main(["registry", "show"]) == 1
    assert "no batch version is published" in capsys.readouterr().err


def test_data_commands_write_the_master_dataset_and_jsonl(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAMBDASTACK_DATA__MASTER_DIR", str(tmp_path / "master"))
    monkeypatch.setenv("LAMBDASTACK_DATA__CATALOGUE_DIR", str(tmp_path / "cat"))
    assert main(["data", "generate", "--users", "20", "--items", "10", "--events", "500", "--days", "2"]) == 0
    assert "generated 500 events, 10 items" in capsys.readouterr().out
    assert (tmp_path / "cat" / "items.parquet").exists()
    out = tmp_path / "e.jsonl"
    assert main(["data", "generate", "--events", "50", "--output", str(out)]) == 0
    from lambdastack.events import decode

    lines = out.read_text().splitlines()
    assert len(lines) == 50 and all(decode(line)[1] == [] for line in lines)
    ml = tmp_path / "ml"
    ml.mkdir()
    (ml / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,4.0,1000\n1,3,x,1000\n")
    assert main(["data", "load", "movielens", str(ml)]) == 0
    captured = capsys.readouterr()
    assert "loaded 1 events" in captured.out
    assert "rejected line 3: rating must be a number between 0 and 5" in captured.err
