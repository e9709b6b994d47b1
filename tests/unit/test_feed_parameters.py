"""The feed handler reads its own parameters (serving.routes.context.feed_parameters) instead of
FastAPI's dependency machinery: a differential test against a route that declares them the
FastAPI way shows the same answers, bad fields, locations and messages included."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdastack.errors import ValidationError
from serving.routes.context import UserId, feed_parameters, feed_parameters_openapi

pytestmark = pytest.mark.unit
DEFAULT_K, K_MAX = 20, 200


def _apps() -> TestClient:
    app = FastAPI()

    @app.exception_handler(RequestValidationError)
    async def _declared(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse([[".".join(map(str, e["loc"])), e["msg"]] for e in exc.errors()], 422)

    @app.exception_handler(ValidationError)
    async def _own(request: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse([list(e) for e in exc.errors], 422)

    @app.get("/declared/{user_id}")
    async def declared(user_id: UserId, k: Annotated[int | None, Query(ge=1)] = None) -> Any:
        if k is not None and k > K_MAX:
            raise ValidationError([("query.k", f"must be at most {K_MAX} (serving.feed_k_max)")])
        return [user_id, DEFAULT_K if k is None else k]

    @app.get("/own/{user_id}")
    async def own(request: Request) -> Any:
        return list(feed_parameters(request, DEFAULT_K, K_MAX))

    return TestClient(app)


CLIENT = _apps()
HOSTILE = ["0", "-3", "abc", " 5", "+5", "05", "5.0", "5.5", "5_0", "1e1", "", "201", "200", "9" * 30]


def _both(path: str, query: str) -> tuple[Any, Any]:
    answers = [CLIENT.get(f"/{kind}/{path}{query}") for kind in ("declared", "own")]
    return tuple((r.status_code, r.json()) for r in answers)  # type: ignore[return-value]


@pytest.mark.parametrize("k", [None, *HOSTILE])
@pytest.mark.parametrize("user_id", ["u1", "-x", "a" * 128, "a" * 129, "u\u00e9", "a.b-c_d"])
def test_the_feed_reads_its_parameters_as_fastapi_would(user_id: str, k: str | None):
    declared, own = _both(quote(user_id, safe=""), "" if k is None else f"?k={quote(k)}")
    assert own == declared


@settings(max_examples=150, deadline=None)
@given(user_id=st.text(min_size=1, max_size=140), k=st.one_of(st.none(), st.text(max_size=8)))
def test_any_user_id_and_k_get_the_answer_fastapi_would_give(user_id: str, k: str | None):
    declared, own = _both(quote(user_id, safe=""), "" if k is None else f"?k={quote(k, safe='')}")
    assert own == declared


def test_two_ks_take_the_last_as_fastapi_does():
    too_small = (422, [["query.k", "Input should be greater than or equal to 1"]])
    assert _both("u1", "?k=3&k=0") == (too_small, too_small)
    assert _both("u1", "?k=0&k=3")[1] == (200, ["u1", 3])


def test_the_openapi_parameters_are_those_fastapi_writes_for_the_declared_route():
    spec = CLIENT.app.openapi()  # type: ignore[attr-defined]
    declared = spec["paths"]["/declared/{user_id}"]["get"]["parameters"]
    own = feed_parameters_openapi()
    for p in own:  # the route's k says what bounds it (the test route declares no description)
        p["schema"].pop("description", None)
        p.pop("description", None)
    assert own == declared
