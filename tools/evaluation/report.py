"""`lambdastack report`: the benchmark JSON files of bench/results rendered into REPORT.md with
PNG plots. Renders whatever files exist and names the ones that are missing.

Beside `<layer>.json`, every eval replay JSON in `RETRAINS_DIR` (`bench/results/retrains/*.json`,
one per `--retrains K`, e.g. `k0.json`, `k4.json`, `k16.json`) is compared in one section: batch
cadence against the speed layer; and `soak.json` (`make soak`: the whole stack for 30 minutes) gets a
section with each process's memory over time. Both are optional and never listed as missing."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.evaluation import plots
from tools.evaluation.references import REFERENCES
from tools.evaluation.variants import BATCH_ONLY, MERGED, VARIANTS

LAYERS = ("batch", "speed", "serving", "eval")
SOAK_FILE = "soak.json"
RETRAINS_DIR = "retrains"  # under the results folder: eval replay JSONs with different --retrains
SEGMENTS = ("all", "known", "new")
TARGET_LIFT = 2.5  # merged NDCG@K over batch_only, overall
TARGET_NDCG = 0.045  # merged NDCG@10 on ml-latest-small (issue #12: 1.1 x the best baseline)
NAMES = (*VARIANTS, *REFERENCES)


def write_json(result: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


def _at(cell: Mapping[str, Any], metric: str, k: int) -> float:
    values = cell.get(metric) or []
    return float(values[k - 1]) if len(values) >= k else 0.0


def eval_table(result: Mapping[str, Any]) -> str:
    """Markdown table: variant (references too) x segment with HR@K, NDCG@K, counts, ms per
    query and the variant's coverage."""
    k = int(result["k"])
    lines = [
        f"| variant | segment | queries | HR@{k} | NDCG@{k} | ms/query | coverage |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in NAMES:
        v = result["variants"].get(name)
        if v is None:
            continue
        for seg in SEGMENTS:
            cell = v["segments"].get(seg)
            if cell is None:
                continue
            cov = f"{v['coverage']:.4f}" if "coverage" in v and seg == "all" else ""
            lines.append(
                f"| {name} | {seg} | {cell['count']} | {_at(cell, 'hr', k):.4f} | "
                f"{_at(cell, 'ndcg', k):.4f} | {v['ms_per_query']:.2f} | {cov} |"
            )
    return "\n".join(lines)


def source_table(result: Mapping[str, Any]) -> str:
    """Markdown table: each feed variant's share of feed places by the source that proposed them."""
    shares = {n: v["source_share"] for n, v in result["variants"].items() if v.get("source_share")}
    if not shares:
        return ""
    sources = sorted({s for d in shares.values() for s in d})
    lines = ["| variant | " + " | ".join(sources) + " |", "|---|" + "---:|" * len(sources)]
    for name in NAMES:
        if name in shares:
            lines.append(
                f"| {name} | " + " | ".join(f"{shares[name].get(s, 0.0):.3f}" for s in sources) + " |"
            )
    return "\n".join(lines)


def eval_targets(result: Mapping[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, measured): merged ahead of every other variant and reference in NDCG@K and
    HR@K in every segment (issue #12), its lift over batch_only (issue #6) and its NDCG@K."""
    k, variants = int(result["k"]), result["variants"]
    if MERGED not in variants:
        return []

    def at(name: str, seg: str, metric: str = "ndcg") -> float:
        cell = variants.get(name, {}).get("segments", {}).get(seg)
        return _at(cell, metric, k) if cell else 0.0

    out = []
    for seg in SEGMENTS:
        for other in NAMES:
            if other == MERGED or other not in variants:
                continue
            for metric, label in (("ndcg", "NDCG"), ("hr", "HR")):
                m, o = at(MERGED, seg, metric), at(other, seg, metric)
                out.append((f"merged > {other} in {label}@{k} ({seg})", m > o, f"{m:.4f} vs {o:.4f}"))
    ndcg = at
    base = ndcg(BATCH_ONLY, "all")
    lift = ndcg(MERGED, "all") / base if base else float("inf")
    out.append((f"merged NDCG@{k} >= {TARGET_LIFT} x batch_only (all)", lift >= TARGET_LIFT, f"{lift:.2f}x"))
    m = ndcg(MERGED, "all")
    out.append(
        (f"merged NDCG@{k} >= {TARGET_NDCG} (all; the ml-latest-small target)", m >= TARGET_NDCG, f"{m:.4f}")
    )
    return out


def _eval_section(result: Mapping[str, Any], out_dir: Path) -> Iterator[str]:
    k = int(result["k"])
    ev = result["events"]
    yield "## Evaluation: prequential replay\n"
    yield (
        f"`lambdastack eval replay {result['dataset']} --split {result['split']} --k {k} "
        f"--json bench/results/eval.json` (batch version {result['version']}, as-of "
        f"{result['as_of_ms']} ms = the cut floored to {result['bucket_s']} s; "
        f"{ev['history']} history events, {ev['replayed']} replayed"
        + (f", limited to the first {result['limit']}" if result.get("limit") else "")
        + f"; {result['wall_s']} s; measured {result['measured_at']}).\n"
    )
    yield eval_table(result) + "\n"
    yield (
        "ms/query is the wall-clock time of one feed query in the replay process (assembling the "
        "speed snapshot included); on a busy host it includes waiting for a CPU.\n"
    )
    sources = source_table(result)
    if sources:
        yield (
            "Share of feed places by the source that proposed the item (an item several sources "
            "proposed counts for each):\n"
        )
        yield sources + "\n"
    targets = eval_targets(result)
    if targets:
        yield "| target | met | measured |\n|---|---|---|"
        yield "\n".join(f"| {t} | {'yes' if ok else 'NO'} | {m} |" for t, ok, m in targets) + "\n"
    plots.metrics_at_k(result["variants"], out_dir / "eval_metrics_at_k.png")
    plots.ndcg_over_time(result["variants"], k, out_dir / "eval_ndcg_over_time.png")
    yield "![HR@K and NDCG@K](eval_metrics_at_k.png)\n\n![NDCG over replay time](eval_ndcg_over_time.png)\n"


def _batch_section(result: Mapping[str, Any], out_dir: Path) -> Iterator[str]:
    yield "## Batch layer\n"
    yield "| run | events | wall s | peak RSS MB | ranker pool NDCG@10 |\n|---|---:|---:|---:|---:|"
    yield "\n".join(
        f"| {r['name']} | {r['events']} | {r['wall_s']} | {r['peak_rss_mb']} | "
        f"{r.get('model', {}).get('pool_ndcg@10', float('nan')):.3f} |"
        for r in result.get("runs", [])
    )
    for g in result.get("growth", []):
        yield f"\n{g['from']} -> {g['to']} events: x{g['events_ratio']} events, x{g['time_ratio']} time."
    yield ""


def _serving_section(result: Mapping[str, Any], out_dir: Path) -> Iterator[str]:
    yield "## Serving layer\n"
    rows = result.get("connections") or {}
    if rows:
        yield "| connections | feed rps | feed p50 ms | feed p99 ms | trivial rps | feed/trivial |"
        yield "|---:|---:|---:|---:|---:|---:|"
        for c in sorted(rows, key=int):
            r = rows[c]
            f, t = r.get("feed", {}), r.get("trivial", {})
            yield (
                f"| {c} | {f.get('rps', '')} | {f.get('p50_ms', '')} | {f.get('p99_ms', '')} | "
                f"{t.get('rps', '')} | {r.get('feed_over_trivial_rps', '')} |"
            )
        plots.latency_by_connections(rows, out_dir / "serving_latency.png")
        yield "\n![serving latency against connections](serving_latency.png)\n"
    yield from _scalars(result.get("targets") or {}, "targets")
    yield from _scalars(result.get("version_load") or {}, "version_load")
    yield ""


def _freshness(result: Any) -> tuple[str, Any] | None:
    """The first freshness histogram or sample list found in a speed result."""
    if isinstance(result, Mapping):
        for key, value in result.items():
            if "fresh" in str(key).lower():
                if isinstance(value, Mapping) and "edges" in value and "counts" in value:
                    return str(key), value
                if isinstance(value, list) and value and all(isinstance(x, int | float) for x in value):
                    return str(key), value
            if (found := _freshness(value)) is not None:
                return found
    elif isinstance(result, list):
        for value in result:
            if (found := _freshness(value)) is not None:
                return found
    return None


def _scalars(d: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every scalar of a nested result as `path: value` lines (a layout this report does not know)."""
    for key, value in d.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from _scalars(value, path)
        elif isinstance(value, str | int | float | bool) or value is None:
            yield f"- `{path}`: {value}"


def _samples_by_rate(result: Mapping[str, Any]) -> dict[str, list[float]]:
    """The probes' freshness samples of every run, pooled per rate (`lambdastack bench speed`)."""
    out: dict[str, list[float]] = {}
    for run in result.get("runs") or []:
        samples = run.get("freshness_samples_ms") if isinstance(run, Mapping) else None
        if isinstance(samples, list) and samples:
            out.setdefault(f"{run.get('rate')} events/s", []).extend(float(x) for x in samples)
    return out


def _speed_table(summary: list[Mapping[str, Any]]) -> Iterator[str]:
    yield "| rate (events/s) | throughput | freshness p50 ms | p95 ms | p99 ms | backlog max | complete |"
    yield "|---:|---:|---:|---:|---:|---:|---|"
    for r in summary:
        f = r.get("freshness_ms") or {}
        yield (
            f"| {r.get('rate')} | {r.get('throughput_eps')} | {f.get('p50')} | {f.get('p95')} | "
            f"{f.get('p99')} | {r.get('backlog_max')} | {r.get('all_complete')} |"
        )


def _speed_section(result: Mapping[str, Any], out_dir: Path) -> Iterator[str]:
    yield "## Speed layer\n"
    summary = result.get("summary")
    if isinstance(summary, list) and summary:
        yield from _speed_table(summary)
        yield ""
    yield from _scalars({k: v for k, v in result.items() if isinstance(v, Mapping)})
    path = out_dir / "speed_freshness.png"
    by_rate = _samples_by_rate(result)
    found = _freshness(result)
    if by_rate:
        plots.histograms(
            by_rate, path, "freshness: probe send -> readable in Redis (ms)", "speed layer freshness"
        )
        yield "\n![freshness histogram per rate](speed_freshness.png)\n"
    elif found is not None:
        key, value = found
        if isinstance(value, Mapping):
            plots.binned_histogram(value["edges"], value["counts"], path, "freshness (ms)", f"speed: {key}")
        else:
            plots.histogram(value, path, "freshness (ms)", f"speed: {key}")
        yield "\n![freshness histogram](speed_freshness.png)\n"
    elif isinstance(summary, list) and summary:
        plots.freshness_percentiles(summary, path)
        yield (
            "\n![freshness percentiles per rate](speed_freshness.png)\n\n"
            "speed.json holds freshness percentiles, not samples: the plot shows p50/p95/p99 per rate "
            "(a histogram needs the per-probe latencies in the JSON).\n"
        )
    else:
        yield "\n(no freshness figures in speed.json)\n"


def retrains_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per replay, by K: batch_only's and merged's NDCG@k and HR@k (all users), the cadence
    and the seconds spent building the retrained versions."""
    rows = []
    for r in results:
        k, rt = int(r["k"]), r.get("retrains") or {"k": 0}
        cells = {n: r["variants"].get(n, {}).get("segments", {}).get("all") for n in (BATCH_ONLY, MERGED)}
        row = {"retrains": int(rt["k"]), "every_days": rt.get("every_days"), "k": k}
        for name, cell in cells.items():
            row[f"{name}_ndcg"] = _at(cell, "ndcg", k) if cell else 0.0
            row[f"{name}_hr"] = _at(cell, "hr", k) if cell else 0.0
        row.update(
            build_s=rt.get("build_s", 0.0), wall_s=r.get("wall_s"), queries=(cells[MERGED] or {}).get("count")
        )
        rows.append(row)
    return sorted(rows, key=lambda row: row["retrains"])


def _retrains_section(results: Sequence[Mapping[str, Any]], out_dir: Path) -> Iterator[str]:
    rows = retrains_rows(results)
    k = rows[0]["k"]
    yield "## Evaluation: batch cadence against the speed layer (`--retrains K`)\n"
    first = results[0]
    yield (
        f"`lambdastack eval replay {first['dataset']} --split {first['split']} --k {k} --retrains K "
        f"--json bench/results/{RETRAINS_DIR}/kK.json`: the batch job re-run K times, evenly spaced "
        "over the replayed period, every variant switched to each new version as serving hot-swaps.\n"
    )
    runs = {(r["dataset"], r["split"], r["k"], r.get("limit")) for r in results}
    if len(runs) > 1:
        yield f"These runs are not comparable (dataset, split, K, limit differ: {sorted(map(str, runs))}).\n"
    yield (
        f"| retrains | every (days) | batch_only NDCG@{k} | HR@{k} | merged NDCG@{k} | HR@{k} | "
        "queries | retrain s | wall s |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    yield (
        "\n".join(
            f"| {r['retrains']} | {'' if r['every_days'] is None else format(r['every_days'], '.1f')} | "
            f"{r['batch_only_ndcg']:.4f} | {r['batch_only_hr']:.4f} | {r['merged_ndcg']:.4f} | "
            f"{r['merged_hr']:.4f} | {r['queries']} | {r['build_s']} | {r['wall_s']} |"
            for r in rows
        )
        + "\n"
    )
    none = next((r for r in rows if r["retrains"] == 0), None)
    if none is not None and rows[-1]["retrains"] > 0:
        most, m0 = rows[-1], none["merged_ndcg"]
        met = "yes" if most["merged_ndcg"] >= m0 else "NO"
        yield "| target | met | measured |\n|---|---|---|"
        yield (
            f"| merged NDCG@{k} with {most['retrains']} retrains >= with none | {met} | "
            f"{most['merged_ndcg']:.4f} vs {m0:.4f} |\n"
        )
    plots.by_retrains(rows, k, out_dir / "eval_retrains.png")
    yield "![NDCG and HR against the number of retrains](eval_retrains.png)\n"


def _soak_section(result: Mapping[str, Any], out_dir: Path) -> Iterator[str]:
    c, feeds, events = result["config"], result["feeds"], result["events"]
    yield "## Soak\n"
    yield (
        f"`lambdastack bench soak --minutes {c['minutes']} --json bench/results/soak.json`: "
        f"{events['per_s']} events/s and {feeds['per_s']} feeds/s for {result['seconds']} s "
        f"(load average {result['machine']['load_avg_1m_at_start']} at the start); memory growth from "
        f"minute {c['warmup_minutes']} on.\n"
    )
    yield "| process | RSS at the warm-up's end MB | highest after MB | growth |\n|---|---:|---:|---:|"
    for p in result["processes"]:
        grown = "" if p["growth"] is None else f"{100 * p['growth']:.1f}%"
        yield f"| {p['role']} | {p['rss_at_warmup_mb']} | {p['rss_max_after_mb']} | {grown} |"
    yield (
        f"\nFeeds: {feeds['requests']} requests, statuses {feeds['statuses']}, p50 "
        f"{feeds['latency_ms']['p50']} ms, p99 {feeds['latency_ms']['p99']} ms, "
        f"{feeds['api_cpu_ms_per_feed']} CPU ms per feed. Events: {events['events_sent']} sent, counts "
        f"exact {events['counts_exact']}, archived {events['archived']} ({events['archived_distinct']} "
        f"distinct), {events['speed_cpu_us_per_event']} CPU µs per event in the speed job.\n"
    )
    plots.rss_over_time(result["processes"], 60 * c["warmup_minutes"], out_dir / "soak_rss.png")
    yield "![resident memory of each process during the soak](soak_rss.png)\n"
    yield from _scalars(result.get("targets") or {}, "targets")
    yield ""


def read_retrains(results_dir: Path) -> list[dict[str, Any]]:
    """The eval replay JSONs of `results_dir/RETRAINS_DIR`, by file name."""
    return [json.loads(p.read_text()) for p in sorted((results_dir / RETRAINS_DIR).glob("*.json"))]


SECTIONS = {
    "batch": _batch_section,
    "speed": _speed_section,
    "serving": _serving_section,
    "eval": _eval_section,
}


def render(results_dir: Path) -> tuple[Path, list[str]]:
    """Write REPORT.md (and its PNGs) from the JSON files present; (report path, missing files)."""
    parts = [
        "# lambdastack benchmark report\n",
        "Generated by `lambdastack report` from `bench/results/*.json`.\n",
    ]
    missing = []
    for layer in LAYERS:
        path = results_dir / f"{layer}.json"
        if not path.is_file():
            missing.append(path.name)
            continue
        parts += list(SECTIONS[layer](json.loads(path.read_text()), results_dir))
    if retrains := read_retrains(results_dir):
        parts += list(_retrains_section(retrains, results_dir))
    if (soak := results_dir / SOAK_FILE).is_file():  # `make soak`, not `make bench`: never missing
        parts += list(_soak_section(json.loads(soak.read_text()), results_dir))
    if missing:
        parts.append(
            "## Missing\n\nNot rendered (no file): "
            + ", ".join(f"`{m}`" for m in missing)
            + ". `make bench` writes them all.\n"
        )
    out = results_dir / "REPORT.md"
    results_dir.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    return out, missing
