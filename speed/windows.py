"""Sliding engagement windows from the minute counters of one item (`{p}:item:{id}:min`).

Pure and dependency-free, so the serving layer can import it (no pyflink behind it).
A window of N minutes at `now_ms` is the sum of the N newest event-time minutes up to and
including the minute holding `now_ms`: it covers between N-1 and N minutes of events, and an
event counts as soon as the loader wrote its minute (no wait for a window to close).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MINUTE_MS = 60_000
WINDOWS_S: tuple[int, ...] = (60, 600, 3600)


def _text(x: str | bytes) -> str:
    return x.decode() if isinstance(x, bytes) else x


def window_sums(
    minutes: Mapping[str | bytes, str | bytes | int],
    now_ms: int,
    windows_s: Sequence[int] = WINDOWS_S,
) -> dict[int, dict[str, int]]:
    """{window_s: {type or '*': count}} from a minute hash (`{minute_ms}:{type}` -> count)."""
    newest = now_ms - now_ms % MINUTE_MS
    out: dict[int, dict[str, int]] = {w: {} for w in windows_s}
    for raw_field, raw_count in minutes.items():
        minute, _, etype = _text(raw_field).partition(":")
        age_min = (newest - int(minute)) // MINUTE_MS
        if age_min < 0:
            continue  # a minute after now (a producer clock ahead): not in any window yet
        count = int(raw_count)
        for w in windows_s:
            if age_min < max(1, w // 60):
                out[w][etype] = out[w].get(etype, 0) + count
    return out
