"""The API in process without Redis or a version: security, validation, error bodies, request
ids, metrics and degraded answers (no service is needed for any of these)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lambdastack.errors import ConfigError
from lambdastack.settings import load_settings
from serving.app import create_app
from tests.conftest import ROOT

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
    assert client.get("/v1/trending").json()["degraded"] is True
    assert (
        client.post("/v1/predict", json={"instances": [{"user_id": "u", "item_id": "i"}]}).status_code == 503
    )
    metrics = client.get("/metrics").text
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
