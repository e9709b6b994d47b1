"""Binaries from Debian packages, installed with apt-get when missing (the machine's own
package manager is how `make up` and the benchmarks get redis-server and wrk)."""

from __future__ import annotations

import os
import shutil
import subprocess

from lambdastack.errors import ServiceError


def ensure_binary(binary: str, package: str) -> tuple[str, bool]:
    """(path of `binary`, whether it was installed just now), installing `package` if needed."""
    found = shutil.which(binary)
    if found:
        return found, False
    if os.geteuid() != 0:
        raise ServiceError(f"{binary} is not installed; run: sudo apt-get install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise ServiceError(f"installing {package} failed ({' '.join(cmd)}): {done.stderr.strip()[-500:]}")
    found = shutil.which(binary)
    if not found:
        raise ServiceError(f"apt-get installed {package} but {binary} is not on PATH")
    return found, True
