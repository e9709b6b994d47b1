"""`lambdastack bench batch`: the whole batch job end to end, as a user runs it (a subprocess of
`lambdastack batch run`), on synthetic data of growing size and on a MovieLens folder; wall time
per stage, peak memory of the job's process tree, rows, and the growth of time with N."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout


def _tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def _timed_run(env: dict[str, str], echo: Callable[[str], None]) -> tuple[float, int, str]:
    """Run `lambdastack batch run`; (wall seconds, peak RSS bytes of its tree, stdout)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools", "batch", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[batch"):
            echo("  " + line.rstrip())
    proc.wait()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"batch run failed ({proc.returncode}): {err[-2000:]}")
    return time.monotonic() - start, peak, "".join(lines)


def _measure(
    settings: Settings, name: str, prepare: Callable[[dict[str, str]], int], echo: Callable[[str], None]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lambdastack-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDASTACK_DATA__")}
        env.update(
            {
                "LAMBDASTACK_CONFIG": str(settings.root / "conf" / "lambdastack.yaml"),
                "LAMBDASTACK_DATA__MASTER_DIR": f"{tmp}/master",
                "LAMBDASTACK_DATA__CATALOGUE_DIR": f"{tmp}/catalogue",
                "LAMBDASTACK_DATA__VIEWS_DIR": f"{tmp}/views",
            }
        )
        events = prepare(env)
        echo(f"{name}: {events} events")
        wall, peak, _ = _timed_run(env, echo)
        layout = VersionLayout(Path(tmp) / "views")
        manifest = layout.manifest(layout.require_current())
        return {
            "name": name,
            "events": manifest["input"]["events"],
            "wall_s": round(wall, 2),
            "stage_s": manifest["stage_seconds"],
            "peak_rss_mb": round(peak / 2**20, 1),
            "rows": manifest["rows"],
            "model": {k: manifest["model"]["metrics"][k] for k in ("pool_ndcg@10", "baseline")},
        }


def run(
    settings: Settings, sizes: list[int], movielens: Path | None, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure each synthetic size and the MovieLens folder; report time growth against N."""
    from lambdastack.master import append, write_catalogue
    from tools.datasets.movielens import read_folder
    from tools.datasets.synthetic import generate

    results = []
    for n in sizes:

        def synthetic(env: dict[str, str], n: int = n) -> int:
            events, items = generate(
                n_users=max(100, n // 100), n_items=max(50, n // 200), n_events=n, seed=7
            )
            append(events, Path(env["LAMBDASTACK_DATA__MASTER_DIR"]))
            write_catalogue(items, Path(env["LAMBDASTACK_DATA__CATALOGUE_DIR"]))
            return n

        results.append(_measure(settings, f"synthetic-{n}", synthetic, echo))
    if movielens is not None:

        def load(env: dict[str, str]) -> int:
            data = read_folder(movielens)
            append(data.events, Path(env["LAMBDASTACK_DATA__MASTER_DIR"]))
            write_catalogue(data.items, Path(env["LAMBDASTACK_DATA__CATALOGUE_DIR"]))
            return data.events.num_rows

        results.append(_measure(settings, f"movielens-{movielens.name}", load, echo))
    synth = [r for r in results if r["name"].startswith("synthetic")]
    growth = []
    for a, b in zip(synth, synth[1:], strict=False):
        growth.append(
            {
                "from": a["events"],
                "to": b["events"],
                "events_ratio": round(b["events"] / a["events"], 2),
                "time_ratio": round(b["wall_s"] / a["wall_s"], 2),
            }
        )
    return {
        "benchmark": "batch",
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "spark_master": settings.batch.spark_master,
        "runs": results,
        "growth": growth,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
