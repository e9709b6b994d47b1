"""`registry ...`: the published batch versions."""

from __future__ import annotations

import argparse
import json

from tools.commands import settings_of


def registry_list(args: argparse.Namespace) -> int:
    from lambdastack.versions import VersionLayout

    s = settings_of(args)
    layout = VersionLayout(s.path(s.data.views_dir))
    current = layout.current()
    for vid in layout.list_versions():
        m = layout.manifest(vid)
        mark = "*" if vid == current else " "
        print(f"{mark} {vid}  as-of {m['as_of_ms']}  events {m['input']['events']}")
    if current is None:
        print("no version published yet")
    return 0


def registry_show(args: argparse.Namespace) -> int:
    from lambdastack.versions import VersionLayout

    s = settings_of(args)
    layout = VersionLayout(s.path(s.data.views_dir))
    vid = args.version or layout.require_current()
    print(json.dumps(layout.manifest(vid), indent=2, sort_keys=True))
    return 0


def registry_promote(args: argparse.Namespace) -> int:
    from lambdastack.registry import promote
    from lambdastack.versions import VersionLayout

    s = settings_of(args)
    change = promote(VersionLayout(s.path(s.data.views_dir)), args.version)
    print(f"current version: {change.version} (was {change.previous or 'none'})")
    return 0


def registry_rollback(args: argparse.Namespace) -> int:
    from lambdastack.registry import rollback
    from lambdastack.versions import VersionLayout

    s = settings_of(args)
    change = rollback(VersionLayout(s.path(s.data.views_dir)))
    print(f"current version: {change.version} (was {change.previous})")
    return 0
