"""lambdastack.jit: the kernels import under PyFlink's Python worker, which replaces
builtins.print by a bound method of its own; plain `import numba` fails there."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

# what pyflink.fn_execution.beam.beam_sdk_worker_main.main does before it runs any function
WORKER_PRINT = """
import builtins, types, sys
worker = types.ModuleType("fake_worker_main"); sys.modules["fake_worker_main"] = worker
class CustomPrint:
    def __init__(self, _print):
        self._print = _print
    def print(self, *args, **kwargs):
        self._print(*args, **kwargs)
CustomPrint.__module__ = "fake_worker_main"
CustomPrint.print.__module__ = "fake_worker_main"
builtins.print = CustomPrint(print).print
replaced = builtins.print
"""


def _run(body: str) -> subprocess.CompletedProcess[str]:
    code = WORKER_PRINT + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_plain_numba_fails_under_the_workers_print():
    done = _run("import numba\n")
    assert done.returncode != 0 and "has no attribute 'print'" in done.stderr


def test_the_kernels_import_and_run_under_it_and_the_workers_print_stays():
    done = _run(
        """
        import builtins
        from lambdastack.candidate_features import warm
        warm()
        assert builtins.print == replaced, "the worker's print was not restored"
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
