"""`lambdastack bench serving`: a real `lambdastack serve` process over a real Redis (its own,
seeded with speed signals through the lambdastack.speedview codecs) and a real published
version, driven on loopback by wrk (tools.bench.api_stack); the feed and a trivial endpoint of
the same app with the same server settings, at several connection counts, each repeated, medians
recorded, with the API process's CPU milliseconds per request beside each rate (load on a shared
host barely moves them). With a baseline (an older checkout and a version it reads) both APIs
run side by side, each repeat runs their feeds back to back (in turn first: ABBA), and the
current/baseline ratio is the median of those pairs' ratios: old against new in one run."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from lambdastack.errors import ServiceError
from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout
from tools.bench.api_stack import ApiUnderTest, api_under_test, ensure_version

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
TARGET_P99_MS = 5.0
TARGET_RATIO = 0.5
TARGET_OVER_BASELINE = 0.8  # #12: the feed's throughput against the code before it, same run


def wrk_binary() -> str:
    """Path of wrk, installing Debian's package when it is missing."""
    from tools.stack.debian import ensure_binary

    return ensure_binary("wrk", "wrk")[0]


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) and error counts from `wrk --latency` output."""

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            raise ServiceError(f"wrk printed no {label} latency:\n{text[-1000:]}")
        return float(m.group(1)) * _UNITS[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        raise ServiceError(f"wrk printed no throughput:\n{text[-1000:]}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    requests = re.search(r"^\s*(\d+) requests in", text, re.M)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": float(sum(int(x) for x in errors.groups())) if errors else 0.0,
        "requests": float(requests.group(1)) if requests else 0.0,
    }


def _median_runs(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]} | {"runs": runs}


def run(
    settings: Settings,
    views: Path | None = None,
    connections: tuple[int, ...] = (1, 8, 32),
    duration_s: int = 5,
    repeats: int = 3,
    echo: Callable[[str], None] = print,
    baseline: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """The benchmark (module docstring); `baseline`: (code folder, views folder) of an older
    checkout measured beside this one in the same run, interleaved."""
    from tools.stack.redis import server_binary

    wrk, redis_server = wrk_binary(), server_binary()
    with tempfile.TemporaryDirectory(prefix="lambdastack-bench-") as tmp, ExitStack() as stacks:
        work = Path(tmp)
        views_dir = ensure_version(settings, views, work, echo)
        load = measure_load(views_dir)
        echo(
            f"version load: {load['load_s']} s for {load['users']} users; a full garbage collection "
            f"then takes {load['full_gc_ms']} ms over {load['gc_tracked_objects']} objects"
        )
        apis = [
            stacks.enter_context(
                api_under_test("current", settings, views_dir, work / "current", redis_server)
            )
        ]
        if baseline is not None:
            code, old_views = baseline
            if VersionLayout(old_views).current() is None:
                raise ServiceError(f"--baseline-views {old_views} holds no published version")
            apis.append(
                stacks.enter_context(
                    api_under_test("baseline", settings, old_views, work / "baseline", redis_server, code)
                )
            )
        for api in apis:
            _wrk(wrk, api.base, ["-s", str(api.script)], 8, 2)  # warm-up
        result = _measure(wrk, apis, connections, duration_s, repeats, echo)
    result["version_load"] = load
    result["setup"] = {
        "views_dir": str(views_dir) if views is not None else "generated or configured",
        "users": apis[0].users,
        "workers": 1,
        "duration_s": duration_s,
        "repeats": repeats,
        "cpus": os.cpu_count(),
        "load_avg_end": os.getloadavg(),
        "access_log": settings.serving.access_log,
        "candidates_max": settings.serving.candidates_max,
    }
    if baseline is not None:
        result["setup"]["baseline"] = {"code": str(baseline[0]), "views_dir": str(baseline[1])}
    return result


def measure_load(views: Path) -> dict[str, Any]:
    """Loading the current version as the API does: seconds, objects the garbage collector then
    tracks, and how long one full collection over them takes."""
    import gc

    from lambdastack.published import PublishedVersion
    from serving import batch_view

    layout = VersionLayout(views)
    gc.collect()
    before = len(gc.get_objects())
    started = time.perf_counter()
    view = batch_view.load(PublishedVersion(layout, layout.require_current()))
    load_s = time.perf_counter() - started
    gc.collect()
    started = time.perf_counter()
    gc.collect()
    full_gc_ms = (time.perf_counter() - started) * 1000
    return {
        "load_s": round(load_s, 2),
        "gc_tracked_objects": len(gc.get_objects()) - before,
        "full_gc_ms": round(full_gc_ms, 1),
        "users": len(view.profiles),
        "items": len(view.item_ids),
    }


def _wrk(
    wrk: str, base: str, extra: list[str], conns: int, duration_s: int, path: str = "/"
) -> dict[str, float]:
    argv = [wrk, "-t1", f"-c{conns}", f"-d{duration_s}s", "--latency", *extra, base + path]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0:
        raise ServiceError(f"wrk failed: {done.stderr.strip()[-500:]}")
    return parse_wrk(done.stdout)


def _timed(
    wrk: str, api: ApiUnderTest, extra: list[str], conns: int, duration_s: int, path: str = "/"
) -> dict[str, float]:
    """One wrk run with the API's CPU per request: its process's CPU time over the requests."""
    before = api.cpu_s()
    out = _wrk(wrk, api.base, extra, conns, duration_s, path)
    cpu = api.cpu_s() - before
    out["cpu_ms_per_request"] = round(1000 * cpu / out["requests"], 4) if out["requests"] else 0.0
    return out


def _measure(
    wrk: str,
    apis: list[ApiUnderTest],
    connections: tuple[int, ...],
    duration_s: int,
    repeats: int,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Feed and trivial runs of each API at each connection count, all interleaved (drifting load
    hits each alike); medians per point. The first API's figures are the result's; a baseline's
    sit under `baseline` with the current/baseline ratios."""
    runs: dict[str, dict[int, dict[str, list[dict[str, float]]]]] = {
        a.name: {c: {"feed": [], "trivial": []} for c in connections} for a in apis
    }
    for c in connections:
        for k in range(repeats):
            order = apis if k % 2 == 0 else apis[::-1]  # ABBA: a drift in the host's speed hits both
            for api in order:  # the feeds back to back: each pair is compared (_paired)
                runs[api.name][c]["feed"].append(_timed(wrk, api, ["-s", str(api.script)], c, duration_s))
            for api in order:
                runs[api.name][c]["trivial"].append(_timed(wrk, api, [], c, duration_s, "/ping"))
    per_api = {a.name: _points(runs[a.name], a.name, echo) for a in apis}
    out: dict[str, Any] = {"connections": per_api[apis[0].name]}
    if len(apis) > 1:
        old = per_api[apis[1].name]
        out["baseline"] = {"code": apis[1].code, "connections": old}
        out["current_over_baseline"] = {
            str(c): _paired(runs[apis[0].name][c]["feed"], runs[apis[1].name][c]["feed"]) for c in connections
        }
        for c, over in out["current_over_baseline"].items():
            pairs = over["pairs"]["feed_rps"]
            echo(f"c={c}: feed rps current/baseline {over['feed_rps']} (median of pairs {pairs})")
    out["targets"] = _targets(out)
    return out


def _paired(new: list[dict[str, float]], old: list[dict[str, float]]) -> dict[str, Any]:
    """The current/baseline ratios of the feed: the median over the repeats of each pair of runs
    back to back (this host's speed drifts by a third within minutes, and a pair sees about the
    same host), each pair's ratio beside it."""
    rps = [_ratio(a["rps"], b["rps"]) for a, b in zip(new, old, strict=True)]
    cpu = [_ratio(a["cpu_ms_per_request"], b["cpu_ms_per_request"]) for a, b in zip(new, old, strict=True)]
    return {
        "feed_rps": round(statistics.median(rps), 3),
        "feed_cpu_ms": round(statistics.median(cpu), 3),
        "pairs": {"feed_rps": rps, "feed_cpu_ms": cpu},
    }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def _points(
    runs: dict[int, dict[str, list[dict[str, float]]]], name: str, echo: Callable[[str], None]
) -> dict[str, Any]:
    points: dict[str, Any] = {}
    for c, by in runs.items():
        feed, ping = _median_runs(by["feed"]), _median_runs(by["trivial"])
        ratio = _ratio(feed["rps"], ping["rps"])
        points[str(c)] = {"feed": feed, "trivial": ping, "feed_over_trivial_rps": ratio}
        echo(
            f"{name} c={c}: feed {feed['rps']:.0f} rps p50 {feed['p50_ms']} ms p99 {feed['p99_ms']} ms "
            f"{feed['cpu_ms_per_request']} CPU ms each; trivial {ping['rps']:.0f} rps "
            f"p99 {ping['p99_ms']} ms {ping['cpu_ms_per_request']} CPU ms; ratio {ratio}"
        )
    return points


def _target(target: float, measured: float, met: bool) -> dict[str, Any]:
    return {"target": target, "measured": measured, "met": met}


def _targets(out: dict[str, Any]) -> dict[str, Any]:
    at8 = out["connections"].get("8")
    if at8 is None:
        return {}
    p99, ratio = at8["feed"]["p99_ms"], at8["feed_over_trivial_rps"]
    targets = {
        "feed_p99_ms_at_8": _target(TARGET_P99_MS, p99, p99 <= TARGET_P99_MS),
        "feed_over_trivial_at_8": _target(TARGET_RATIO, ratio, ratio >= TARGET_RATIO),
    }
    if "current_over_baseline" in out:
        over = out["current_over_baseline"]["8"]["feed_rps"]
        targets["feed_rps_over_baseline_at_8"] = _target(
            TARGET_OVER_BASELINE, over, over >= TARGET_OVER_BASELINE
        )
    return targets


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=True))
