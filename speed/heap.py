"""How `speed run` asks glibc's malloc to hand large blocks back: a fixed mmap threshold.

glibc serves a block above its mmap threshold (128 KiB at start) with its own mmap, returned to
the system on free; but freeing such a block raises the threshold to the block's size (up to
32 MiB), so later blocks of that size come from the heap, whose freed holes rarely fit the next
one. The archiver's de-duplication set (speed.recent_ids) keeps ~rate x TTL ids in one table that
is rebuilt, at the same size, as its deleted slots fill it up: with the sliding threshold each
rebuild could leave the heap a table larger (the 30-minute soak saw `speed run` step up 14.5 MB at
minute 22; a simulation of the set at 1,000 ids/s steps up 16.8 MB, the table's size, at the same
minute, and stays flat with the threshold fixed). Setting the threshold turns the sliding off.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, now kept


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix malloc's mmap threshold for this process; False where the C library is not glibc
    (then nothing changes: the setting is a saving, not a condition of running)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
