"""Debian binaries: found on PATH, or a sentence saying how to install them."""

import pytest

from lambdastack.errors import ServiceError
from tools.stack import debian

pytestmark = pytest.mark.unit


def test_a_binary_on_path_is_found_without_installing():
    path, installed = debian.ensure_binary("sh", "dash")
    assert path.endswith("/sh") and installed is False


def test_without_root_a_missing_binary_names_the_install_command(monkeypatch):
    monkeypatch.setattr(debian.shutil, "which", lambda _name: None)
    monkeypatch.setattr(debian.os, "geteuid", lambda: 1000)
    with pytest.raises(ServiceError, match=r"wrk is not installed; run: sudo apt-get install wrk"):
        debian.ensure_binary("wrk", "wrk")
