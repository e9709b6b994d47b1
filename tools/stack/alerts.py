"""The alert rules of the stack's Prometheus, rendered from the settings: one source for the rules
file `up` writes into the state directory and the one infra/prometheus/ holds for Docker users
(tests/unit/test_prometheus.py keeps the committed file equal to this).

Each rule names only metrics the API (serving/metrics.py) or `speed run` (speed/metrics.py)
exports, and `up`, which Prometheus records per target itself. Ratios of rates are NaN without
traffic, and NaN is above no threshold: an idle stack alerts on nothing but what is down or stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lambdastack.settings import Settings
from tools.stack.cron import longest_gap_s

FEED_ROUTE = "/v1/users/{user_id}/feed"  # the route label serving/routes/feeds.py counts degraded feeds by
RATE_WINDOW = "5m"
GROUP = "lambdastack"


@dataclass(frozen=True)
class Rule:
    alert: str
    expr: str
    for_: str  # how long the condition holds before the alert fires ("0s": at once)
    severity: str
    summary: str  # what a reader of the alert is told, with {{ $value }}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.for_ != "0s":
            out["for"] = self.for_
        out["labels"] = {"severity": self.severity}
        out["annotations"] = {"summary": self.summary}
        return out


def _ratio(numerator: str, denominator: str) -> str:
    return f"sum(rate({numerator}[{RATE_WINDOW}])) / sum(rate({denominator}[{RATE_WINDOW}]))"


def rules(settings: Settings) -> list[Rule]:
    """The stack's alert rules, thresholds from `prometheus:` and `batch.schedule`."""
    down = Rule(
        "TargetDown",
        "up == 0",
        "2m",
        "critical",
        "Prometheus cannot scrape {{ $labels.job }} at {{ $labels.instance }}",
    )
    return [*_speed_rules(settings), *_api_rules(settings), down]


def _speed_rules(settings: Settings) -> list[Rule]:
    """The speed view's freshness, its loader's lag, drift."""
    p = settings.prometheus
    freshness = "lambdastack_speed_freshness_seconds_bucket"
    lag = "lambdastack_speed_loader_lag_records"
    return [
        Rule(
            "SpeedFreshnessSlow",
            f"histogram_quantile(0.99, sum by (le) (rate({freshness}[{RATE_WINDOW}])))"
            f" > {p.freshness_p99_s:g}",
            "5m",
            "warning",
            f"speed view freshness p99 is {{{{ $value }}}} s (over {p.freshness_p99_s:g} s)",
        ),
        Rule(
            "SpeedLoaderLagGrowing",
            f"deriv({lag}[10m]) > 0 and {lag} > 0 and min_over_time({lag}[10m]) >= 0",
            "10m",
            "warning",
            "the speed loader's lag has grown for 20 minutes, by {{ $value }} records per second",
        ),
        Rule(
            "SpeedDrift",
            "lambdastack_speed_drift_alert > 0",
            "0s",
            "warning",
            f"a model feature's PSI against the training baseline is above speed.drift_psi_alert "
            f"({settings.speed.drift_psi_alert:g})",
        ),
    ]


def _api_rules(settings: Settings) -> list[Rule]:
    """What the API serves and sees: degraded feeds, 5xx, the batch version's age, the speed job."""
    p = settings.prometheus
    stale_after = 2 * longest_gap_s(settings.batch.schedule)
    degraded = f'lambdastack_degraded_responses_total{{route="{FEED_ROUTE}"}}'
    errors = 'lambdastack_responses_total{status=~"5.."}'
    return [
        Rule(
            "FeedsDegraded",
            f"{_ratio(degraded, 'lambdastack_feed_requests_total')} > {p.degraded_ratio_max:g}",
            "5m",
            "warning",
            f"{{{{ $value | humanizePercentage }}}} of feeds are degraded (over {p.degraded_ratio_max:.1%})",
        ),
        Rule(
            "ApiErrors",
            f"{_ratio(errors, 'lambdastack_responses_total')} > {p.error_ratio_max:g}",
            "5m",
            "critical",
            f"{{{{ $value | humanizePercentage }}}} of API responses are 5xx (over {p.error_ratio_max:.1%})",
        ),
        Rule(
            "BatchVersionStale",
            f"time() - lambdastack_batch_as_of_timestamp_seconds > {stale_after}",
            "10m",
            "warning",
            f"the batch version served is {{{{ $value | humanizeDuration }}}} old, over twice the "
            f"longest wait of batch.schedule {settings.batch.schedule!r} ({stale_after} s)",
        ),
        Rule(
            "SpeedJobDown",
            "lambdastack_speed_job_running == 0",
            "1m",
            "critical",
            "the speed job is not running: no fresh loader heartbeat saying the Flink job answered RUNNING",
        ),
    ]


def rules_document(settings: Settings) -> dict[str, Any]:
    """The rules file (Prometheus's `groups:` format)."""
    interval = duration(settings.prometheus.scrape_interval_s)
    return {
        "groups": [{"name": GROUP, "interval": interval, "rules": [r.as_dict() for r in rules(settings)]}]
    }


def duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as `15s`, else milliseconds."""
    return f"{seconds:.0f}s" if seconds == int(seconds) else f"{round(seconds * 1000)}ms"
