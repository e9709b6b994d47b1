"""`lambdastack bench serving`: a real `lambdastack serve` process over a real Redis (its own,
seeded with speed signals through the lambdastack.speedview codecs) and a real published
version, driven on loopback by wrk; the feed and a trivial endpoint of the same app with the same
server settings, at several connection counts, each repeated, medians recorded."""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lambdastack.errors import ServiceError
from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
TARGET_P99_MS = 5.0
TARGET_RATIO = 0.5


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
    return {
        "rps": float(rps.group(1)),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": float(sum(int(x) for x in errors.groups())) if errors else 0.0,
    }


def lua_script(paths: list[str]) -> str:
    """A wrk script that walks through `paths` (so it is not one cached user)."""
    quoted = ",".join(json.dumps(p) for p in paths)
    return (
        f"local paths = {{{quoted}}}\nlocal n = 0\n"
        "request = function()\n  n = n + 1\n"
        '  return wrk.format("GET", paths[(n % #paths) + 1])\nend\n'
    )


def private_redis_argv(binary: str, port: int, home: Path, *extra: str) -> list[str]:
    """A throwaway redis-server on loopback: no persistence, its files under `home`."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(home),
        *extra,
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise ServiceError(f"{what} did not happen within {timeout_s:.0f} s")


def _up(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def ensure_version(settings: Settings, views: Path | None, work: Path, echo: Callable[[str], None]) -> Path:
    """A views directory with a current version: --views, the configured one, or a fresh one."""
    for candidate in (views, settings.path(settings.data.views_dir)):
        if candidate is not None and VersionLayout(candidate).current() is not None:
            return candidate
    if views is not None:
        raise ServiceError(f"--views {views} holds no published version")
    from batch.job import run as batch_run
    from lambdastack.master import append, write_catalogue
    from tools.datasets.synthetic import generate

    echo("no published version: generating synthetic data and running the batch job once ...")
    now = int(time.time() * 1000)
    events, items = generate(1000, 500, 100_000, 7, start_ms=now - 30 * 86_400_000, days=30)
    s = settings.model_copy(
        update={
            "data": settings.data.model_copy(
                update={
                    "master_dir": work / "master",
                    "catalogue_dir": work / "cat",
                    "views_dir": work / "views",
                }
            )
        }
    )
    append(events, s.path(s.data.master_dir))
    write_catalogue(items, s.path(s.data.catalogue_dir))
    batch_run(s, echo=echo)
    return work / "views"


def seed_redis(port: int, prefix: str, views: Path, bucket_s: int) -> list[str]:
    """Speed signals for every batch user (recent, fresh, seen set), trending, bucket counts and the
    live total since the version's as-of (what the speed layer keeps: the feed reads it); the users."""
    import pyarrow.parquet as pq
    import redis

    from lambdastack.keys import KeyLayout, bucket_start
    from lambdastack.published import PublishedVersion
    from lambdastack.speedview import FreshCandidates, Interaction, encode_fresh, encode_recent

    layout = VersionLayout(views)
    vid = layout.require_current()
    users = [
        str(u)
        for u in pq.read_table(layout.view_dir(vid, "user_history"), columns=["user_id"])[
            "user_id"
        ].to_pylist()
    ]
    items = [
        str(i)
        for i in pq.read_table(layout.view_dir(vid, "item_stats"), columns=["item_id"])["item_id"].to_pylist()
    ]
    keys, now = KeyLayout(prefix), int(time.time() * 1000)
    r = redis.Redis(port=port)
    pipe = r.pipeline(transaction=False)
    for n, u in enumerate(users):
        recent = [
            Interaction(items[(n + j) % len(items)], "view", 1.0, now - 60_000 * (j + 1)) for j in range(3)
        ]
        fresh = FreshCandidates(
            vid, vid, now - 30_000, tuple((items[(n * 7 + j) % len(items)], 0.5) for j in range(10))
        )
        pipe.hset(keys.user(u), mapping={"recent": encode_recent(recent[::-1]), "fresh": encode_fresh(fresh)})
        pipe.zadd(keys.seen(u), {i.item_id: i.event_time_ms for i in recent})
    end = now - now % 60_000
    pipe.zadd(keys.trending(end), {i: float(50 - n) for n, i in enumerate(items[:50])})
    pipe.set(keys.trending_latest(), end)
    counts = {i: n % 17 + 1 for n, i in enumerate(items)}
    pipe.zadd(keys.bucket(bucket_start(now, bucket_s)), counts)
    pipe.zadd(keys.since(PublishedVersion(layout, vid).as_of_ms), counts)
    pipe.execute()
    return users


def _median_runs(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]} | {"runs": runs}


def run(
    settings: Settings,
    views: Path | None = None,
    connections: tuple[int, ...] = (1, 8, 32),
    duration_s: int = 5,
    repeats: int = 3,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    from tools.stack.redis import server_binary

    wrk, redis_server = wrk_binary(), server_binary()
    with tempfile.TemporaryDirectory(prefix="lambdastack-bench-") as tmp:
        work = Path(tmp)
        views_dir = ensure_version(settings, views, work, echo)
        load = measure_load(views_dir)
        echo(
            f"version load: {load['load_s']} s for {load['users']} users; a full garbage collection "
            f"then takes {load['full_gc_ms']} ms over {load['gc_tracked_objects']} objects"
        )
        redis_port, api_port = _free_port(), _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDASTACK_")}
        env.update(
            {
                "LAMBDASTACK_CONFIG": str(settings.root / "conf" / "lambdastack.yaml"),
                "LAMBDASTACK_DATA__VIEWS_DIR": str(views_dir),
                "LAMBDASTACK_REDIS__PORT": str(redis_port),
                "LAMBDASTACK_SERVING__PORT": str(api_port),
                "LAMBDASTACK_SERVING__HOST": "127.0.0.1",
            }
        )
        with _process(private_redis_argv(redis_server, redis_port, work), env, work / "redis.log"):
            _wait(lambda: _port_open(redis_port), 20, "the benchmark's Redis start")
            users = seed_redis(redis_port, settings.redis.key_prefix, views_dir, settings.batch.bucket_s)
            paths = [f"/v1/users/{u}/feed?k=20" for u in users] + [
                f"/v1/users/cold-{n}/feed?k=20" for n in range(50)
            ]
            script = work / "feed.lua"
            script.write_text(lua_script(paths))
            api_argv = [sys.executable, "-m", "tools", "serve", "--port", str(api_port)]
            with _process(api_argv, env, work / "api.log"):
                _wait(lambda: _up(api_port), 120, "the API ready")
                base = f"http://127.0.0.1:{api_port}"
                _check_feed(base, users[0])
                _wrk(wrk, base, ["-s", str(script)], 8, 2)  # warm-up
                result = _measure(wrk, base, script, connections, duration_s, repeats, echo)
    result["version_load"] = load
    result["setup"] = {
        "views_dir": str(views_dir) if views is not None else "generated or configured",
        "users": len(users),
        "workers": 1,
        "duration_s": duration_s,
        "repeats": repeats,
        "cpus": os.cpu_count(),
        "load_avg_end": os.getloadavg(),
        "access_log": settings.serving.access_log,
        "candidates_max": settings.serving.candidates_max,
    }
    return result


def _check_feed(base: str, user: str) -> None:
    """The feed answers from both views before it is measured (a degraded one would be cheaper)."""
    import urllib.request

    with urllib.request.urlopen(f"{base}/v1/users/{user}/feed?k=20", timeout=10) as r:
        body = json.loads(r.read())
    if body["degraded"] or not body["items"] or body["view_version"] is None:
        raise ServiceError(f"the feed is degraded or empty before the benchmark: {json.dumps(body)[:500]}")
    if not any(i["speed_count"] for i in body["items"]) and body["signal_age_ms"] is None:
        raise ServiceError("the feed used no speed signal before the benchmark")


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


def _port_open(port: int) -> bool:
    from tools.stack.process import port_open

    return port_open("127.0.0.1", port)


def _wrk(
    wrk: str, base: str, extra: list[str], conns: int, duration_s: int, path: str = "/"
) -> dict[str, float]:
    argv = [wrk, "-t1", f"-c{conns}", f"-d{duration_s}s", "--latency", *extra, base + path]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0:
        raise ServiceError(f"wrk failed: {done.stderr.strip()[-500:]}")
    return parse_wrk(done.stdout)


def _measure(
    wrk: str,
    base: str,
    script: Path,
    connections: tuple[int, ...],
    duration_s: int,
    repeats: int,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    out: dict[str, Any] = {"connections": {}}
    for c in connections:
        feed_runs, ping_runs = [], []
        for _ in range(repeats):  # interleaved, so drifting machine load hits both alike
            feed_runs.append(_wrk(wrk, base, ["-s", str(script)], c, duration_s))
            ping_runs.append(_wrk(wrk, base, [], c, duration_s, "/ping"))
        feed, ping = _median_runs(feed_runs), _median_runs(ping_runs)
        ratio = round(feed["rps"] / ping["rps"], 3) if ping["rps"] else 0.0
        out["connections"][str(c)] = {"feed": feed, "trivial": ping, "feed_over_trivial_rps": ratio}
        echo(
            f"c={c}: feed {feed['rps']:.0f} rps p50 {feed['p50_ms']} ms p99 {feed['p99_ms']} ms; "
            f"trivial {ping['rps']:.0f} rps p99 {ping['p99_ms']} ms; ratio {ratio}"
        )
    at8 = out["connections"].get("8")
    if at8 is not None:
        out["targets"] = {
            "feed_p99_ms_at_8": {
                "target": TARGET_P99_MS,
                "measured": at8["feed"]["p99_ms"],
                "met": at8["feed"]["p99_ms"] <= TARGET_P99_MS,
            },
            "feed_over_trivial_at_8": {
                "target": TARGET_RATIO,
                "measured": at8["feed_over_trivial_rps"],
                "met": at8["feed_over_trivial_rps"] >= TARGET_RATIO,
            },
        }
    return out


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=True))
