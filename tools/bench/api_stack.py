"""The API under test of `lambdastack bench serving`: a published version, a private Redis seeded
with speed signals for its users, and a `serve` process of one code tree (this one, or a baseline
checkout given by its folder) over both, with the CPU time the process has used."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lambdastack.errors import ServiceError
from lambdastack.settings import Settings
from lambdastack.versions import VersionLayout

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the unit of /proc/PID/stat's CPU times


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


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
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


def api_ready(port: int) -> bool:
    """The API on this port answers /ready with 200."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextmanager
def _process(
    argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
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


def version_ids(views: Path) -> tuple[list[str], list[str]]:
    """The users with a batch history and the items of the current version in `views`."""
    import pyarrow.parquet as pq

    layout = VersionLayout(views)
    vid = layout.require_current()

    def column(view: str, name: str) -> list[str]:
        return [str(v) for v in pq.read_table(layout.view_dir(vid, view), columns=[name])[name].to_pylist()]

    return column("user_history", "user_id"), column("item_stats", "item_id")


def seed_redis(port: int, prefix: str, views: Path, bucket_s: int) -> list[str]:
    """Speed signals for every batch user (recent, fresh, seen set), trending, bucket counts and the
    live total since the version's as-of (what the speed layer keeps: the feed reads it); the users."""
    import redis

    from lambdastack.keys import KeyLayout, bucket_start
    from lambdastack.published import PublishedVersion
    from lambdastack.speedview import FreshCandidates, Interaction, encode_fresh, encode_recent

    layout = VersionLayout(views)
    vid = layout.require_current()
    users, items = version_ids(views)
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


@dataclass(frozen=True)
class ApiUnderTest:
    """One running API: its name in the results, base URL, process id and wrk feed script."""

    name: str
    base: str
    pid: int
    script: Path
    users: int
    code: str  # the code tree it runs ("." for this one)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the API process has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _serve_argv(code: Path | None, port: int) -> list[str]:
    """`serve` of this tree, or of a checkout from before the CLI moved to tools/ (`-m lambdastack`)."""
    module = "tools" if code is None or (code / "tools" / "__main__.py").exists() else "lambdastack"
    return [sys.executable, "-m", module, "serve", "--port", str(port)]


@contextmanager
def api_under_test(
    name: str, settings: Settings, views_dir: Path, work: Path, redis_server: str, code: Path | None = None
) -> Iterator[ApiUnderTest]:
    """A private Redis seeded for the version in `views_dir` and a `serve` of `code` (None: this
    tree) over both, checked to answer a feed from both views; stopped on exit."""
    work.mkdir(parents=True, exist_ok=True)
    redis_port, api_port = free_port(), free_port()
    root = code if code is not None else settings.root
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDASTACK_")}
    env.update(
        {
            "LAMBDASTACK_CONFIG": str(root / "conf" / "lambdastack.yaml"),
            "LAMBDASTACK_DATA__VIEWS_DIR": str(views_dir),
            "LAMBDASTACK_REDIS__PORT": str(redis_port),
            "LAMBDASTACK_REDIS__KEY_PREFIX": settings.redis.key_prefix,  # the seeded keys'
            "LAMBDASTACK_SERVING__PORT": str(api_port),
            "LAMBDASTACK_SERVING__HOST": "127.0.0.1",
        }
    )
    if code is not None:
        env["PYTHONPATH"] = str(code)
    with _process(private_redis_argv(redis_server, redis_port, work), env, work / "redis.log"):
        _wait(lambda: _port_open(redis_port), 20, f"the {name} benchmark Redis start")
        users = seed_redis(redis_port, settings.redis.key_prefix, views_dir, settings.batch.bucket_s)
        paths = [f"/v1/users/{u}/feed?k=20" for u in users] + [
            f"/v1/users/cold-{n}/feed?k=20" for n in range(50)
        ]
        script = work / "feed.lua"
        script.write_text(lua_script(paths))
        # run from the code's own folder: `python -m` puts the working directory first on the path
        with _process(_serve_argv(code, api_port), env, work / "api.log", cwd=root) as proc:
            _wait(lambda: api_ready(api_port), 120, f"the {name} API ready (its log: {work / 'api.log'})")
            base = f"http://127.0.0.1:{api_port}"
            _check_feed(base, users[0])
            _warm(base, paths)
            yield ApiUnderTest(name, base, proc.pid, script, len(users), str(code or "."))


def lua_script(paths: list[str]) -> str:
    """A wrk script that walks through `paths` (so it is not one cached user)."""
    quoted = ",".join(json.dumps(p) for p in paths)
    return (
        f"local paths = {{{quoted}}}\nlocal n = 0\n"
        "request = function()\n  n = n + 1\n"
        '  return wrk.format("GET", paths[(n % #paths) + 1])\nend\n'
    )


def _check_feed(base: str, user: str) -> None:
    """The feed answers from both views before it is measured (a degraded one would be cheaper)."""
    import urllib.request

    with urllib.request.urlopen(f"{base}/v1/users/{user}/feed?k=20", timeout=10) as r:
        body = json.loads(r.read())
    if body["degraded"] or not body["items"] or body["view_version"] is None:
        raise ServiceError(f"the feed is degraded or empty before the benchmark: {json.dumps(body)[:500]}")
    if not any(i["speed_count"] for i in body["items"]) and body["signal_age_ms"] is None:
        raise ServiceError("the feed used no speed signal before the benchmark")


def _warm(base: str, paths: list[str]) -> None:
    """Every path asked once, so that the runs measure the steady state: each user's batch side of
    the feed is worked out on their first request of a version and kept (serving.feed.batch_side)."""
    import urllib.request

    for path in paths:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            r.read()


def _port_open(port: int) -> bool:
    from tools.stack.process import port_open

    return port_open("127.0.0.1", port)
