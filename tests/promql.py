"""What the Prometheus tests compare: the metric names a PromQL expression reads, and the series
names a set of metric families (a real registry's, or a real scrape's) exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[1] / "infra" / "grafana" / "dashboards" / "lambdastack.json"
PROMETHEUS_OWN = frozenset({"up"})  # series Prometheus records per target itself (no exporter has them)

# words of PromQL that are not metric names (functions are recognised by the `(` after them)
KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left"}
    | {"group_right", "inf", "nan", "atan2"}
)
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (not its functions, labels, keywords or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in NAME.finditer(text):
        word, before, after = m.group(), text[: m.start()], text[m.end() :].lstrip()
        if word.lower() in KEYWORDS or after.startswith("(") or before[-1:].isdigit() or before[-1:] == "$":
            continue
        names.add(word)
    return names


def exported_names(families: Iterable[Any]) -> set[str]:
    """Series names of metric families (prometheus_client `Metric`s), by their type, with or
    without samples yet (a labelled metric has none before its first child)."""
    out = set()
    for family in families:
        out.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        out.update(sample.name for sample in family.samples)
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the Grafana dashboard."""
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]
