"""speed.heap: with the mmap threshold fixed, a block of 1 MiB freed after one of 8 MiB is still
served by its own mmap (so freeing it hands it back); by default glibc slides the threshold up
to 8 MiB and serves it from the heap. Each case in a fresh interpreter: the threshold is
per process and slides once."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

_PROBE = """
import ctypes, sys
from speed.heap import fix_mmap_threshold
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = Info
big = bytearray(8 << 20)
del big  # by default the threshold now slides to 8 MiB
before = mallinfo2().hblks
blocks = [bytearray(1 << 20) for _ in range(4)]
print(mallinfo2().hblks - before)
"""


def _mmapped_blocks(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_with_the_threshold_fixed_blocks_of_a_mebibyte_stay_mmapped_after_a_larger_one_is_freed():
    assert _mmapped_blocks("fixed") == 4


def test_by_default_glibc_slides_the_threshold_and_serves_them_from_the_heap():
    assert _mmapped_blocks("default") == 0
