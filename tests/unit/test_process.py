import shutil

import pytest

from tools.stack.process import ManagedProcess

pytestmark = pytest.mark.unit


def test_start_is_idempotent_and_stop_kills_the_tree(tmp_path):
    proc = ManagedProcess("sleeper", tmp_path)
    pid = proc.start(["bash", "-c", "sleep 60 & sleep 60"])
    assert proc.start(["bash", "-c", "sleep 60"]) == pid
    assert proc.running()
    assert proc.stop(timeout_s=5)
    assert not proc.running() and not proc.pid_file.exists()


def test_a_stale_pid_file_counts_as_not_running(tmp_path):
    proc = ManagedProcess("ghost", tmp_path)
    proc.pid_file.parent.mkdir(parents=True)
    proc.pid_file.write_text("999999 0\n")
    assert proc.pid() is None
    assert proc.stop() is False
    assert not proc.pid_file.exists()


def test_log_tail(tmp_path):
    proc = ManagedProcess("echoer", tmp_path)
    proc.start([shutil.which("echo") or "echo", "hello"])
    import time

    for _ in range(50):
        if "hello" in proc.log_tail():
            break
        time.sleep(0.05)
    assert "hello" in proc.log_tail()
