"""The speed job's plan: the de-duplication's TTL set in the compiled plan, and the SQL that makes
the planner de-duplicate every valid event by its id before any pipeline counts it."""

import json

import pytest

from lambdastack.settings import load_settings
from speed import sql, users
from speed.plan import DEDUPLICATE, with_state_ttl

pytestmark = pytest.mark.unit


def test_the_dedupe_nodes_get_their_ttl_and_the_others_keep_theirs():
    plan = {
        "nodes": [
            {
                "id": 1,
                "type": "stream-exec-deduplicate_1",
                "state": [{"name": "deduplicateState", "ttl": "2 d"}],
            },
            {
                "id": 2,
                "type": "stream-exec-group-aggregate_1",
                "state": [{"name": "groupAggregateState", "ttl": "2 d"}],
            },
            {
                "id": 3,
                "type": "stream-exec-deduplicate_2",
                "state": [{"name": "deduplicateState", "ttl": "2 d"}],
            },
        ],
        "edges": [],
    }
    out, found = with_state_ttl(json.dumps(plan), DEDUPLICATE, 600_000)
    ttls = {n["id"]: n["state"][0]["ttl"] for n in json.loads(out)["nodes"]}
    assert found == 2 and ttls == {1: "600000 ms", 2: "2 d", 3: "600000 ms"}
    assert with_state_ttl(json.dumps({"nodes": []}), DEDUPLICATE, 1)[1] == 0


def test_both_sources_keep_the_first_record_of_each_event_id_in_arrival_order():
    s = load_settings()
    for view in (sql.valid_view(s.batch.bucket_s), users.events_view()):
        assert "ROW_NUMBER() OVER (PARTITION BY k ORDER BY pt ASC)" in view and "WHERE rn = 1" in view
        assert "e.event_id AS k" in view
    assert "pt AS PROCTIME()" in sql.source_ddl(s) and "pt AS PROCTIME()" in users.source_ddl(s)
    # the dead letters read the parse before the de-duplication: every invalid record is one
    assert "FROM parsed WHERE NOT e.ok" in sql.insert_dead_letters(s)
