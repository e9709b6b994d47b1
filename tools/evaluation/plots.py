"""PNG plots of the benchmark report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def metrics_at_k(variants: Mapping[str, Any], path: Path, segment: str = "all") -> Path:
    """HR@K and NDCG@K against K, one line per variant."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, v in variants.items():
        cell = v["segments"].get(segment)
        if not cell:
            continue
        ks = list(range(1, len(cell["hr"]) + 1))
        axes[0].plot(ks, cell["hr"], marker="o", label=name)
        axes[1].plot(ks, cell["ndcg"], marker="o", label=name)
    for ax, label in zip(axes, ("HR@K", "NDCG@K"), strict=True):
        ax.set_xlabel("K")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Replay: {segment} users")
    return _save(fig, path)


def ndcg_over_time(variants: Mapping[str, Any], k: int, path: Path) -> Path:
    """Mean NDCG@k per consecutive group of queries, against the replay's event time."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, v in variants.items():
        pts = v.get("ndcg_over_time") or []
        if pts:
            times = [datetime.fromtimestamp(p["t_ms"] / 1000, tz=UTC) for p in pts]
            ax.plot(times, [p["mean"] for p in pts], marker=".", label=name)
    ax.set_xlabel("event time (end of each group of queries)")
    ax.set_ylabel(f"NDCG@{k}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.autofmt_xdate()
    return _save(fig, path)


def by_retrains(rows: Sequence[Mapping[str, Any]], k: int, path: Path) -> Path:
    """batch_only's and merged's NDCG@k and HR@k against the number of batch retrains."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    xs = [int(r["retrains"]) for r in rows]
    for ax, metric, label in ((axes[0], "ndcg", f"NDCG@{k}"), (axes[1], "hr", f"HR@{k}")):
        for name in ("batch_only", "merged"):
            ax.plot(xs, [float(r[f"{name}_{metric}"]) for r in rows], marker="o", label=name)
        ax.set_xlabel("batch retrains during the replay (K)")
        ax.set_ylabel(label)
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Batch cadence against the speed layer")
    return _save(fig, path)


def histogram(values: Sequence[float], path: Path, xlabel: str, title: str) -> Path:
    """A histogram of raw samples."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.hist(list(values), bins=40)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def histograms(series: Mapping[str, Sequence[float]], path: Path, xlabel: str, title: str) -> Path:
    """Histograms of raw positive samples, one per label, on log-spaced bins (latencies that span
    milliseconds to minutes stay readable)."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    values = [v for vs in series.values() for v in vs if v > 0]
    if values:
        bins = np.geomspace(min(values), max(values) * 1.001, 50)
        for label, vs in series.items():
            ax.hist([v for v in vs if v > 0], bins=bins, alpha=0.6, label=label)
        ax.set_xscale("log")
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def binned_histogram(
    edges: Sequence[float], counts: Sequence[float], path: Path, xlabel: str, title: str
) -> Path:
    """A histogram already binned: len(edges) == len(counts) + 1."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ax.bar(list(edges[:-1]), list(counts), width=widths, align="edge")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def latency_by_connections(rows: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path) -> Path:
    """p50/p99 latency and requests/s against connections, feed and trivial endpoint."""
    plt = _pyplot()
    conns = sorted(rows, key=int)
    xs = [int(c) for c in conns]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for kind in ("feed", "trivial"):
        if not all(kind in rows[c] for c in conns):
            continue
        for q, style in (("p50_ms", "-o"), ("p99_ms", "--o")):
            axes[0].plot(xs, [rows[c][kind][q] for c in conns], style, label=f"{kind} {q[:3]}")
        axes[1].plot(xs, [rows[c][kind]["rps"] for c in conns], "-o", label=kind)
    axes[0].set_ylabel("latency (ms)")
    axes[1].set_ylabel("requests/s")
    for ax in axes:
        ax.set_xlabel("connections")
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def freshness_percentiles(summary: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Freshness p50/p95/p99 (ms) per event rate, as grouped bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    qs = ("p50", "p95", "p99")
    width = 0.8 / len(qs)
    for n, q in enumerate(qs):
        values = [float((r.get("freshness_ms") or {}).get(q) or 0.0) for r in summary]
        ax.bar([x + n * width for x in range(len(summary))], values, width=width, label=q)
    ax.set_xticks([x + width for x in range(len(summary))], [str(r.get("rate")) for r in summary])
    ax.set_xlabel("events/s")
    ax.set_ylabel("freshness (ms): event sent -> visible in Redis")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return _save(fig, path)


def rss_over_time(processes: Sequence[Mapping[str, Any]], warmup_s: float, path: Path) -> Path:
    """Each process's resident memory (MB) against the soak's minutes, the warm-up's end marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for p in processes:
        samples = p.get("samples") or []
        if samples and max(mb for _, mb in samples) >= 20:  # the tiny wrappers (bash, tee) left out
            ax.plot([t / 60 for t, _ in samples], [mb for _, mb in samples], label=p.get("role", "?"))
    ax.axvline(warmup_s / 60, color="grey", linestyle="--", linewidth=1, label="end of warm-up")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)
