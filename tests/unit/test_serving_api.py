"""The API in process without Redis or a version: security, validation, error bodies, request
ids, metrics and degraded answers (no service is needed for any of these)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from lambdastack.errors import ConfigError
from lambdastack.events import json_schema as event_json_schema
from lambdastack.features import FEATURE_NAMES
from lambdastack.keys import ALL_TYPES
from lambdastack.settings import load_settings
from lambdastack.speed_health import drift_report
from lambdastack.speedview import FreshCandidates, Interaction, SpeedRead
from serving.app import create_app
from serving.routes import ROUTERS
from tests.conftest import ROOT
from tests.unit.test_serving_feed import AS_OF, tiny_model, world

pytestmark = pytest.mark.unit
WRITER = "w" * 32
READER = "r" * 32
KEYS = (
    f"[{{name: writer, key: {WRITER}, scopes: ['events:write']}}, "
    f"{{name: reader, key: {READER}, scopes: []}}]"
)


def settings(tmp_path: Path, **extra: str):
    env = {
        "LAMBDASTACK_CONFIG": str(ROOT / "conf" / "lambdastack.yaml"),
        "LAMBDASTACK_DATA__VIEWS_DIR": str(tmp_path / "views"),
        "LAMBDASTACK_REDIS__PORT": "1",  # nothing listens there: the speed view is down
        "LAMBDASTACK_SERVING__API_KEYS": KEYS,
        # the explorer page's key is the writer's, unless a test brings keys of its own
        "LAMBDASTACK_SERVING__UI_KEY": "null" if "LAMBDASTACK_SERVING__API_KEYS" in extra else "writer",
        "LAMBDASTACK_SERVING__MAX_BODY_BYTES": "2048",
        "LAMBDASTACK_SERVING__ACCESS_LOG": "false",
        **extra,
    }
    return load_settings(environ=env)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings(tmp_path)), raise_server_exceptions=False) as c:
        yield c


def test_writes_need_a_key_with_the_right_scope(client):
    body = {
        "events": [
            {
                "event_id": "e1",
                "user_id": "u",
                "item_id": "i",
                "type": "view",
                "event_time": "2026-11-28T13:00:00Z",
            }
        ]
    }
    r = client.post("/v1/events", json=body)
    assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
    assert client.post("/v1/events", json=body, headers={"X-API-Key": "nope"}).status_code == 401
    r = client.post("/v1/events", json=body, headers={"X-API-Key": READER})
    assert r.status_code == 403 and "events:write" in r.json()["detail"]


def test_invalid_events_are_rejected_naming_each_field(client):
    body = {"events": [{"event_id": "e1", "user_id": "", "item_id": "i", "type": "jump"}]}
    r = client.post("/v1/events", json=body, headers={"X-API-Key": WRITER})
    assert r.status_code == 422
    locs = {d["loc"] for d in r.json()["detail"]}
    assert {"events[0].user_id", "events[0].type", "events[0].event_time"} <= locs


def test_bodies_over_the_limit_get_413_with_or_without_a_length(client):
    big = b'{"events": [' + b" " * 4000 + b"]}"
    r = client.post(
        "/v1/events", content=big, headers={"X-API-Key": WRITER, "Content-Type": "application/json"}
    )
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(100):
            yield b'{"user_id": "u1", "item_id": "i1"},'
        yield b"{}]}"

    r = client.post("/v1/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "2048 bytes" in r.json()["detail"]


def test_parameters_are_bounded(client):
    assert client.get("/v1/users/u1/feed", params={"k": 0}).status_code == 422
    assert client.get("/v1/users/u1/feed", params={"k": 10_000}).status_code == 422
    assert client.get("/v1/users/bad%20id/feed").status_code == 422
    assert client.get("/v1/trending", params={"k": -1}).status_code == 422
    r = client.post("/v1/predict", json={"instances": []})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "body.instances"


def test_error_bodies_carry_no_trace_or_path(client):
    for r in (
        client.get("/v1/users/u1/feed", params={"k": "x"}),
        client.post("/v1/predict", content=b"{not json", headers={"Content-Type": "application/json"}),
        client.get("/nowhere"),
    ):
        text = r.text
        assert r.status_code in (404, 422) and "Traceback" not in text and str(ROOT) not in text
        assert r.json()["request_id"] == r.headers["x-request-id"]


def test_request_ids_are_kept_or_made(client):
    r = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    made = client.get("/health", headers={"X-Request-ID": "bad id\twith tab"}).headers["x-request-id"]
    assert made != "bad id\twith tab" and len(made) == 32


def test_each_request_leaves_one_json_access_log_line_with_its_request_id(tmp_path, capfd):
    app = create_app(settings(tmp_path, LAMBDASTACK_SERVING__ACCESS_LOG="true"))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.get("/health", headers={"X-Request-ID": "req-1"})
        c.get("/v1/users/u1/feed", params={"k": 0}, headers={"X-Request-ID": "req-2"})
    # buffered, and written at shutdown at the latest
    lines = [json.loads(x) for x in capfd.readouterr().err.splitlines() if '"lambdastack.access"' in x]
    by_id = {line["request_id"]: line for line in lines}
    assert by_id["req-1"]["status"] == 200 and by_id["req-1"]["route"] == "/health"
    assert by_id["req-2"]["status"] == 422 and by_id["req-2"]["route"] == "/v1/users/{user_id}/feed"
    assert all(line["level"] == "info" and line["ms"] >= 0 and "ts" in line for line in lines)


def test_no_version_and_no_redis_degrade_the_feed_and_fail_readiness(client):
    r = client.get("/v1/users/u1/feed", params={"k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["degraded"] is True and body["items"] == [] and body["view_version"] is None
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["checks"] == {
        "batch_version": False,
        "model": False,
        "redis": False,
    }
    speed = ready.json()["speed"]
    assert speed["ok"] is False and "Redis does not answer" in speed["problem"]
    assert client.get("/v1/trending").json()["degraded"] is True
    assert (
        client.post("/v1/predict", json={"instances": [{"user_id": "u", "item_id": "i"}]}).status_code == 503
    )
    metrics = client.get("/metrics").text
    assert "lambdastack_speed_ok 0.0" in metrics and "lambdastack_speed_heartbeat_age_seconds -1.0" in metrics
    assert 'lambdastack_degraded_responses_total{route="/v1/users/{user_id}/feed"} 1.0' in metrics
    assert 'lambdastack_request_seconds_count{method="GET",route="/v1/users/{user_id}/feed"} 1.0' in metrics


def test_cors_is_closed_unless_configured(tmp_path):
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    with TestClient(create_app(settings(tmp_path))) as c:
        assert "access-control-allow-origin" not in c.get("/health", headers=origin).headers
    allowed = settings(tmp_path, LAMBDASTACK_SERVING__CORS_ORIGINS="['https://app.example']")
    with TestClient(create_app(allowed)) as c:
        r = c.get("/health", headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_openapi_is_served(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/users/{user_id}/feed" in spec["paths"] and client.get("/docs").status_code == 200
    # the configured limits the handlers check are in the document (schemathesis holds the API to it)
    s = client.app.state.context.settings.serving
    for path in ("/v1/users/{user_id}/feed", "/v1/trending"):
        (k,) = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "k"]
        ints = [b for b in k["schema"].get("anyOf", [k["schema"]]) if b.get("type") == "integer"]
        assert [(b["minimum"], b["maximum"]) for b in ints] == [(1, s.feed_k_max)]
    bodies = spec["components"]["schemas"]
    assert bodies["PredictIn"]["properties"]["instances"]["maxItems"] == s.predict_instances_max
    assert bodies["EventsIn"]["properties"]["events"]["items"] == event_json_schema()


def test_placeholder_keys_are_rejected_outside_development(tmp_path):
    with pytest.raises(ConfigError, match="placeholders"):
        settings(
            tmp_path,
            LAMBDASTACK_SERVING__ENVIRONMENT="production",
            LAMBDASTACK_SERVING__API_KEYS="[{name: a, key: change-me-please-0123456789, scopes: []}]",
        )
    prod = settings(tmp_path, LAMBDASTACK_SERVING__ENVIRONMENT="production")
    assert prod.serving.api_keys[0].key.get_secret_value() == WRITER
    assert WRITER not in repr(prod.serving)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.7", "api.internal"])
def test_placeholder_keys_are_rejected_when_the_api_binds_beyond_loopback(tmp_path, host):
    placeholder = "[{name: dev, key: dev-events-key-change-me, scopes: [events:write]}]"
    reason = rf"serving: .*\['dev'\] are placeholders.*host {host} is reachable"
    with pytest.raises(ConfigError, match=reason):
        settings(tmp_path, LAMBDASTACK_SERVING__HOST=host, LAMBDASTACK_SERVING__API_KEYS=placeholder)
    assert settings(tmp_path, LAMBDASTACK_SERVING__HOST=host).serving.host == host  # real keys: fine
    assert settings(tmp_path, LAMBDASTACK_SERVING__HOST=host, LAMBDASTACK_SERVING__API_KEYS="[]")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "localhost", "::1"])
def test_placeholder_keys_are_allowed_in_development_on_loopback(tmp_path, host):
    placeholder = "[{name: dev, key: dev-events-key-change-me, scopes: [events:write]}]"
    s = settings(tmp_path, LAMBDASTACK_SERVING__HOST=host, LAMBDASTACK_SERVING__API_KEYS=placeholder)
    assert s.serving.api_keys[0].placeholder()


class FakeSpeedView:
    """SpeedView's interface over fixed replies, as Redis holds them for any user and item."""

    recent = (Interaction("i5", "like", 1.0, AS_OF + 5),)
    fresh = FreshCandidates("v000001", "v000001", AS_OF + 5, (("i13", 0.9), ("i15", 0.5)))
    from_total = True  # the counts come from the as-of's live total (False: the buckets' sum)

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        return True

    async def loader_heartbeat(self):
        import time

        from lambdastack.speed_health import heartbeat

        now = int(time.time() * 1000)
        return {k.encode(): str(v).encode() for k, v in heartbeat(now, now, 0, False).items()}

    async def read_feed(self, user_id: str, as_of_ms: int, now_ms: int, candidates) -> SpeedRead:
        counts = {c: 2 for c in candidates[:3]} | {"i33": 40}
        trending = (("i31", 12.5),)
        movers = (("i33", 40),)
        end = AS_OF + 60_000
        return SpeedRead(
            True, counts, movers, self.recent, self.fresh, trending, end, from_total=self.from_total
        )

    async def user(self, user_id: str):
        return self.recent, self.fresh

    async def item(self, item_id: str, as_of_ms: int, now_ms: int):
        if item_id not in ("i33", "speed-only"):
            return {ALL_TYPES: 0}, {}
        return {ALL_TYPES: 7, "view": 7}, {w: {ALL_TYPES: 3, "view": 3} for w in ("1m", "10m", "1h")}

    async def trending(self, k: int):
        return AS_OF + 60_000, [("i31", 12.5), ("i2", 3.0)][:k]

    async def signals_for(self, users, items, as_of_ms: int, now_ms: int):
        return {u: self.recent for u in users}, {i: 2 for i in items}

    async def drift(self):
        raw = {
            "item_pop": "0.31",
            "knn_score": "0.02",
            "alert": "1",
            "window_end_ms": str(AS_OF),
            "events": "400",
        }
        return drift_report(raw)


class FakeSink:
    topic = "events"

    def __init__(self) -> None:
        self.sent: list = []

    async def send_all(self, events) -> None:
        self.sent += events

    def close(self) -> None: ...


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app with a version (the world of serving.feed's tests, with a model) and a speed view."""
    app = create_app(settings(tmp_path))
    ctx = app.state.context
    ctx.state.speed, ctx.sink = FakeSpeedView(), FakeSink()
    version = world(model=tiny_model())
    with TestClient(app, raise_server_exceptions=False) as c:
        monkeypatch.setattr(type(ctx.state), "served", property(lambda _self: version))
        yield c


ROUTES = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]


def declared(method: str, path: str, status: int):
    """The response model the route declares for `status` (in the OpenAPI document)."""
    route = next(r for r in ROUTES if r.path == path and method in r.methods)
    if status == (route.status_code or 200):
        return route.response_model
    return route.responses[status]["model"]


FEATURES = {n: 0.5 for n in FEATURE_NAMES}
EVENT = {
    "event_id": "e1",
    "user_id": "u1",
    "item_id": "i1",
    "type": "view",
    "event_time": "2026-11-28T13:00:00Z",
}
CALLS = [  # (method, route, url, request options, status)
    ("GET", "/v1/users/{user_id}/feed", "/v1/users/u1/feed", {"params": {"k": 10}}, 200),
    ("GET", "/v1/users/{user_id}/feed", "/v1/users/stranger/feed", {}, 200),
    ("GET", "/v1/users/{user_id}/feed", "/v1/users/u1/feed", {"params": {"k": 0}}, 422),
    ("GET", "/v1/users/{user_id}/profile", "/v1/users/u1/profile", {}, 200),
    ("GET", "/v1/users/{user_id}/profile", "/v1/users/stranger/profile", {}, 200),
    ("GET", "/v1/items/{item_id}", "/v1/items/i33", {}, 200),
    ("GET", "/v1/items/{item_id}", "/v1/items/speed-only", {}, 200),
    ("GET", "/v1/items/{item_id}", "/v1/items/nowhere", {}, 404),
    ("GET", "/v1/trending", "/v1/trending", {"params": {"k": 5}}, 200),
    (
        "POST",
        "/v1/predict",
        "/v1/predict",
        {"json": {"instances": [{"user_id": "u1", "item_id": "i3"}, {"features": FEATURES}, {"x": 1}]}},
        200,
    ),
    (
        "POST",
        "/v1/predict",
        "/v1/predict",
        {"content": b"{no", "headers": {"Content-Type": "application/json"}},
        422,  # FastAPI answers a body that is not JSON with 422
    ),
    (
        "POST",
        "/v1/events",
        "/v1/events",
        {"json": {"events": [EVENT]}, "headers": {"X-API-Key": WRITER}},
        202,
    ),
    ("POST", "/v1/events", "/v1/events", {"json": {"events": [EVENT]}}, 401),
    (
        "POST",
        "/v1/events",
        "/v1/events",
        {"json": {"events": [EVENT]}, "headers": {"X-API-Key": READER}},
        403,
    ),
    ("GET", "/v1/users/sample", "/v1/users/sample", {"params": {"n": 5}}, 200),
    ("GET", "/v1/users/sample", "/v1/users/sample", {"params": {"n": 0}}, 422),
    ("GET", "/v1/status", "/v1/status", {}, 200),
    ("GET", "/health", "/health", {}, 200),
    ("GET", "/ready", "/ready", {}, 200),
    ("GET", "/version", "/version", {}, 200),
]


def test_every_endpoint_answers_the_body_its_response_model_declares(served):
    for method, path, url, options, status in CALLS:
        r = served.request(method, url, **options)
        assert r.status_code == status, (url, r.text)
        TypeAdapter(declared(method, path, status)).validate_json(r.content, strict=True)
    with_model = {(m, r.path) for r in ROUTES if r.response_model is not None for m in r.methods}
    assert with_model == {(m, p) for m, p, *_ in CALLS}  # every route with a JSON body is called
    documented = served.get("/openapi.json").json()["paths"]
    assert {(m.upper(), p) for p, ops in documented.items() for m in ops} == with_model | {
        ("GET", "/metrics")
    }


def test_the_answers_hold_what_the_views_say(served):
    feed = served.get("/v1/users/u1/feed", params={"k": 10}).json()
    assert feed["degraded"] is False and feed["model_version"] == "v000001" and len(feed["items"]) == 10
    by_id = {i["item_id"]: i for i in feed["items"]}
    assert all(i["count"] == i["batch_count"] + i["speed_count"] for i in feed["items"])
    assert all(
        i["score"] == round(i["score"], 6) and i["title"] == f"title {i['item_id']}" for i in feed["items"]
    )
    assert "i5" not in by_id  # a recent interaction is seen
    profile = served.get("/v1/users/u1/profile").json()
    assert profile["known_to_batch"] and profile["merged"]["events"] == profile["batch"]["n"] + 1
    assert profile["fresh"]["items"] == [["i13", 0.9], ["i15", 0.5]]
    predictions = served.post(
        "/v1/predict", json={"instances": [{"user_id": "u1", "item_id": "i3"}, {"x": 1}]}
    ).json()["predictions"]
    assert 0 < predictions[0]["score"] < 1 and list(predictions[1]) == ["error"]
    assert predictions[1]["error"].startswith("x: is not a field of an instance")
    missing = served.get("/v1/items/nowhere")
    assert missing.json() == {
        "detail": "item nowhere is in neither the batch nor the speed view",
        "request_id": missing.headers["x-request-id"],
    }


def test_feed_reads_are_counted_by_the_source_of_their_live_counts(served):
    speed = served.app.state.context.state.speed
    for from_total in (True, True, False):
        speed.from_total = from_total
        assert served.get("/v1/users/u1/feed", params={"k": 5}).status_code == 200
    metrics = served.get("/metrics").text
    assert 'lambdastack_feed_live_reads_total{source="total"} 2.0' in metrics
    assert 'lambdastack_feed_live_reads_total{source="buckets"} 1.0' in metrics
