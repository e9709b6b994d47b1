"""The speed job's compiled plan: its statements planned once into Flink's JSON plan, the state
TTL of the de-duplication set there, where Flink SQL cannot set it (a STATE_TTL hint reaches joins
and aggregates only, `table.exec.state.ttl` every operator), then executed.

Every other operator keeps `table.exec.state.ttl` (`speed.state_ttl_s`) or its hint."""

from __future__ import annotations

import json
from typing import Any

DEDUPLICATE = "stream-exec-deduplicate"


def with_state_ttl(plan_json: str, node_type: str, ttl_ms: int) -> tuple[str, int]:
    """The plan with every state of each node of `node_type` (its type up to the version suffix)
    given a TTL of `ttl_ms`, and how many such nodes it holds."""
    plan = json.loads(plan_json)
    found = 0
    for node in plan.get("nodes", []):
        if str(node.get("type", "")).rsplit("_", 1)[0] == node_type:
            found += 1
            for state in node.get("state", []):
                state["ttl"] = f"{ttl_ms} ms"
    return json.dumps(plan), found


def execute(t_env: Any, statements: Any, dedupe_ttl_s: int) -> Any:
    """Plan the statement set, give its de-duplication operators their TTL, and run the plan;
    the TableResult, as `statements.execute()` returns it (pyflink has no wrapper of compiled
    plans, so this reaches its Java objects as its own `execute` does)."""
    from pyflink.java_gateway import get_gateway
    from pyflink.table import TableResult

    compiled = statements._j_statement_set.compilePlan().asJsonString()
    plan, found = with_state_ttl(compiled, DEDUPLICATE, dedupe_ttl_s * 1000)
    if found == 0:
        raise RuntimeError("the speed job's plan holds no de-duplication: its SQL changed")
    reference = get_gateway().jvm.org.apache.flink.table.api.PlanReference.fromJsonString(plan)
    t_env._before_execute()
    return TableResult(t_env._j_tenv.loadPlan(reference).execute())
