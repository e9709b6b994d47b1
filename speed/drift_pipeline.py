"""The drift pipeline of the speed job: online feature rows of sampled events, binned by a pandas
UDF against the baseline of the current batch version, counted per tumbling event-time window,
feature and bin in Java state, one record per closed window on the signals topic.

Online features use the user's batch profile, newest batch interactions and the version's item
counts (speed.scoring.feature_matrix, which calls lambdastack.candidate_features), not the events
since the as-of (live counts 0): a cheap, honest approximation of the features the model sees,
good for spotting a shift in their distribution.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdastack.features import FEATURE_NAMES
from lambdastack.settings import Settings
from speed.sql import interval, upsert_sink, window_end_ms

if TYPE_CHECKING:  # pyarrow and onnxruntime load only inside the UDF
    from lambdastack.published import PublishedVersion
    from speed.scoring_view import ScoringView


def drift_state(published: PublishedVersion) -> tuple[ScoringView, dict[str, Any]]:
    """The scoring view of a version and its feature baseline (what the UDF needs)."""
    from speed import scoring_view

    return scoring_view.load(published), published.feature_baseline()


def bins_udf(settings: Settings) -> Any:
    """The pandas UDF drift_bins(user_id, item_id, event_time_ms) -> 'b0,b1,...' or NULL."""
    import pandas as pd
    from pyflink.table import DataTypes
    from pyflink.table.udf import ScalarFunction, udf

    views_dir, check_s = str(settings.path(settings.data.views_dir)), settings.speed.baseline_check_s

    class DriftBins(ScalarFunction):  # type: ignore[misc]
        def open(self, function_context: Any) -> None:
            from lambdastack.follower import VersionFollower
            from lambdastack.versions import VersionLayout
            from speed.udf_metrics import follower_gauges

            self.follower = VersionFollower(VersionLayout(Path(views_dir)), drift_state, check_s)
            follower_gauges(function_context, "drift_bins", self.follower)

        def eval(self, users: pd.Series, items: pd.Series, times: pd.Series) -> pd.Series:
            from speed.drift import bin_row
            from speed.scoring import feature_matrix

            loaded = self.follower.current()
            if loaded is None or not loaded[1]:
                return pd.Series([None] * len(users), dtype=object)
            view, baseline = loaded
            out = []
            for u, i, t in zip(users, items, times, strict=True):
                row = feature_matrix(view, u, view.user_state(u), (), [i], int(t))[0].tolist()
                out.append(bin_row(row, FEATURE_NAMES, baseline))
            return pd.Series(out, dtype=object)

    return udf(DriftBins(), result_type=DataTypes.STRING(), func_type="pandas")


def statements(settings: Settings) -> tuple[list[str], str]:
    """(DDL and views, the INSERT) of the pipeline."""
    s = settings.speed
    size = interval(s.drift_window_s * 1000)
    rows = f"""
CREATE TEMPORARY VIEW drift_rows AS
SELECT ts, drift_bins(user_id, item_id, event_time_ms) AS bins FROM valid_events
WHERE MOD(ABS(HASH_CODE(event_id)), 1000) < {s.drift_sample_per_mille}"""
    branches = "\nUNION ALL\n".join(
        f"SELECT ts, '{name}' AS feature, CAST(SPLIT_INDEX(bins, ',', {k}) AS INT) AS bin FROM drift_rows"
        for k, name in enumerate(FEATURE_NAMES)
    )
    feature_bins = f"CREATE TEMPORARY VIEW drift_feature_bins AS\n{branches}"
    counts = f"""
CREATE TEMPORARY VIEW drift_counts AS
SELECT feature, bin, COUNT(*) AS n, window_time AS wt
FROM TABLE(TUMBLE(TABLE drift_feature_bins, DESCRIPTOR(ts), {size}))
WHERE bin >= 0  -- NULL (no baseline) and NO_BIN (feature not in the baseline) drop out
GROUP BY feature, bin, window_start, window_end, window_time"""
    sink = upsert_sink(
        settings, "drift_windows", "kind STRING, window_end_ms BIGINT, bins STRING", "kind, window_end_ms"
    )
    insert = f"""
INSERT INTO drift_windows
SELECT 'drift',
       {window_end_ms()},
       LISTAGG(CONCAT_WS(' ', feature, CAST(bin AS STRING), CAST(n AS STRING)), ';')
FROM TABLE(TUMBLE(TABLE drift_counts, DESCRIPTOR(wt), {size}))
GROUP BY window_start, window_end, window_time"""
    return [rows, feature_bins, counts, sink], insert


def add_to(t_env: Any, statement_set: Any, settings: Settings) -> None:
    """Add the drift pipeline to the job (needs the `valid_events` view)."""
    t_env.create_temporary_function("drift_bins", bins_udf(settings))
    ddl, insert = statements(settings)
    for d in ddl:
        t_env.execute_sql(d)
    statement_set.add_insert_sql(insert)
