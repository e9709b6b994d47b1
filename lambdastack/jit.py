"""numba's `njit` for the kernels (lambdastack.evidence_kernels, lambdastack.feature_kernels),
imported so that it also works inside PyFlink's Python worker, where the speed layer's scoring
runs them: that worker replaces `builtins.print` by a bound method of its own
(pyflink.fn_execution.beam.beam_sdk_worker_main), and numba, while it is first imported,
registers `print` by looking it up in the module its `__module__` names, which fails there
(AttributeError: ... has no attribute 'print'). The wrapped original is put back for the length
of that import, then the worker's is restored.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def _builtin_print() -> Iterator[None]:
    current = builtins.print
    original = getattr(getattr(current, "__self__", None), "_print", None)
    if getattr(current, "__module__", "builtins") == "builtins" or original is None:
        yield
        return
    builtins.print = original
    try:
        yield
    finally:
        builtins.print = current


with _builtin_print():
    from numba import njit

__all__ = ["njit"]
