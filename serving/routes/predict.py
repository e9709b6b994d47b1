"""POST /v1/predict: scores of instances by the current version's model, in one run."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from lambdastack.errors import NoVersionError, ValidationError
from serving.predict import feature_rows, parse_instances
from serving.routes.context import BODY_ERRORS, ERRORS, context, json_response, now_ms
from serving.schemas import Error, InstanceErrorOut, PredictIn, PredictOut, ScoreOut

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["model"])


@router.post(
    "/predict",
    response_model=PredictOut,
    responses={503: {"model": Error, "description": "no model is loaded"}, **BODY_ERRORS},
)
async def predict(request: Request, body: PredictIn) -> Response:
    """Scores of instances ({user_id, item_id} or {features}) by the current version's model."""
    ctx = context(request)
    limit = ctx.settings.serving.predict_instances_max
    if len(body.instances) > limit:
        raise ValidationError([("instances", f"must hold at most {limit} instances")])
    snap = ctx.state.served
    if snap.ranker is None:
        raise NoVersionError("no ranking model is loaded yet; publish a batch version first")
    parsed = parse_instances(body.instances)
    pairs = [p.pair for p in parsed if p.pair is not None]
    t = now_ms()
    signals = None
    if pairs:
        users, items = sorted({u for u, _ in pairs}), sorted({i for _, i in pairs})
        signals = await ctx.state.speed.signals_for(users, items, snap.view.as_of_ms, t)
    scores = iter(snap.ranker.predict(feature_rows(snap, parsed, signals, t, ctx.feed)).tolist())
    out: list[ScoreOut | InstanceErrorOut] = [
        InstanceErrorOut(p.error) if p.error is not None else ScoreOut(next(scores)) for p in parsed
    ]
    return json_response(
        PredictOut(
            predictions=out,
            model_version=snap.ranker.version,
            view_version=snap.view.version,
            degraded=bool(pairs) and signals is None,
        )
    )
