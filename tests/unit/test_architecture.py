"""The house plan, enforced: the core imports no layer and no tool, a layer imports no other layer
and no tool, modules stay under MAX_MODULE_LINES and functions under MAX_FUNCTION_LINES.

Every import counts: module-level, function-local, under `if TYPE_CHECKING:`, relative, and
`importlib.import_module("...")` with a literal name. A module or function over its limit passes
only if it is on ALLOWED_LONG, with the reason; an entry that is no longer needed fails too, so
the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CORE = "lambdastack"
LAYERS = frozenset({"batch", "speed", "serving"})
TOOLS = "tools"
PACKAGES = (CORE, *sorted(LAYERS), TOOLS)
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# (file, function qualname or "" for the whole module) -> why it may stay long for now
ALLOWED_LONG: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Module:
    path: Path  # relative to the root
    name: str  # dotted
    package: str  # the top-level package
    tree: ast.Module
    lines: int


def modules(root: Path) -> list[Module]:
    """Every Python module of the five top-level packages under `root`."""
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text, filename=str(rel))
            out.append(Module(rel, ".".join(parts), package, tree, len(text.splitlines())))
    return out


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.name.split(".")
    if module.path.name != "__init__.py":
        base.pop()  # a module's relative imports start from its package
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported(module: Module) -> Iterator[tuple[str, int]]:
    """(dotted name, line) of everything the module imports, wherever the import stands."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            yield _resolve(module, node), node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno


def edge_rule(source: str, target: str) -> str | None:
    """The rule an import from package `source` of package `target` breaks, if any."""
    if source == target or target not in PACKAGES:
        return None
    if source == CORE:
        return "the core imports no layer and no tool"
    if source in LAYERS and target in LAYERS:
        return "a layer never imports another layer (what two layers share moves into lambdastack/)"
    if source in LAYERS and target == TOOLS:
        return "nothing imports tools/"
    return None


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualname, lines from `def` to its last line) of every function, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = prefix + node.name
            yield name, (node.end_lineno or node.lineno) - node.lineno + 1
            yield from functions(node, name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, prefix + node.name + ".")
        else:
            yield from functions(node, prefix)


def violations(found: list[Module], allowed: dict[tuple[str, str], str]) -> list[str]:
    """One sentence per broken rule: the file, the edge or size, the rule."""
    out = []
    used: set[tuple[str, str]] = set()
    for m in found:
        file = m.path.as_posix()
        for name, line in imported(m):
            rule = edge_rule(m.package, name.split(".")[0])
            if rule:
                out.append(f"{file}:{line}: imports {name} ({m.package} -> {name.split('.')[0]}): {rule}")
        sized = [("", m.lines, MAX_MODULE_LINES, "module")]
        sized += [(q, n, MAX_FUNCTION_LINES, f"function {q}") for q, n in functions(m.tree)]
        for qualname, lines, limit, what in sized:
            if lines <= limit:
                continue
            if (file, qualname) in allowed:
                used.add((file, qualname))
            else:
                out.append(f"{file}: {what} has {lines} lines: at most {limit} (split it)")
    for file, qualname in sorted(set(allowed) - used):
        what = f"function {qualname}" if qualname else "the module"
        out.append(f"{file}: {what} is on ALLOWED_LONG but is not too long (or is gone): remove the entry")
    return out


def test_the_tree_follows_the_house_plan():
    found = modules(ROOT)
    assert len(found) > 50, f"found only {len(found)} modules under {ROOT}: the walk is broken"
    assert {m.package for m in found} == set(PACKAGES)
    assert sum(1 for m in found for _ in imported(m)) > 500
    assert all(reason.strip() for reason in ALLOWED_LONG.values())
    problems = violations(found, ALLOWED_LONG)
    assert not problems, "the house plan is broken:\n" + "\n".join(problems)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checker_catches_every_kind_of_violation(tmp_path):
    for package in PACKAGES:
        _write(tmp_path, f"{package}/__init__.py", "")
    _write(tmp_path, "lambdastack/core.py", "def f():\n    from batch import job\n")
    _write(
        tmp_path,
        "batch/job.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from serving.app import App\n",
    )
    _write(tmp_path, "speed/deep/sub.py", "from ...serving import feed\nfrom . import fine\n")
    _write(tmp_path, "serving/late.py", "import importlib\nimportlib.import_module('tools.cli')\n")
    _write(tmp_path, "serving/ok.py", "import lambdastack.keys\nfrom serving import late\n")
    _write(tmp_path, "tools/top.py", "import batch, speed, serving, lambdastack\n")
    _write(tmp_path, "tools/big.py", "x = 1\n" * (MAX_MODULE_LINES + 1))
    _write(tmp_path, "batch/long.py", "class C:\n    def m(self):\n" + "        pass\n" * MAX_FUNCTION_LINES)
    _write(
        tmp_path, "speed/long.py", "def outer():\n    def inner():\n" + "        pass\n" * MAX_FUNCTION_LINES
    )
    _write(tmp_path, "speed/fits.py", "def f():\n" + "    pass\n" * (MAX_FUNCTION_LINES - 1))
    allowed = {("speed/long.py", "outer.inner"): "a test", ("speed/fits.py", "f"): "a test"}

    problems = violations(modules(tmp_path), allowed)

    def one(fragment: str) -> str:
        hits = [p for p in problems if fragment in p]
        assert len(hits) == 1, (fragment, problems)
        return hits[0]

    assert "the core imports no layer" in one("lambdastack/core.py:2: imports batch (lambdastack -> batch)")
    assert "never imports another layer" in one("batch/job.py:3: imports serving.app (batch -> serving)")
    assert "another layer" in one("speed/deep/sub.py:1: imports serving (speed -> serving)")
    assert "nothing imports tools/" in one("serving/late.py:2: imports tools.cli (serving -> tools)")
    assert "at most 400" in one("tools/big.py: module has 401 lines")
    assert "at most 60" in one("batch/long.py: function C.m has 61 lines")
    assert "speed/long.py: function outer has 62 lines" in one("speed/long.py")
    assert "remove the entry" in one("speed/fits.py: function f")
    assert len(problems) == 8, problems


def readme_tree(readme: str) -> set[str]:
    """The modules the README's architecture tree draws (`pkg/` lines, then indented modules)."""
    block = readme.split("### The tree", 1)[1].split("```", 2)[1]
    drawn, top = set(), ""
    for line in block.splitlines():
        if not line.strip():
            continue
        name = line.split()[0]
        if not line.startswith(" "):
            top = name.rstrip("/")
            continue
        drawn.add(f"{top}/{name}__init__.py" if name.endswith("/") else f"{top}/{name}")
    return drawn


def test_the_readme_draws_the_tree_as_it_is():
    on_disk = {
        p.relative_to(ROOT).as_posix()
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if p.name != "__main__.py" and p.relative_to(ROOT / pkg).as_posix() != "__init__.py"
    }
    drawn = readme_tree((ROOT / "README.md").read_text())
    assert len(on_disk) > 50
    assert not on_disk - drawn, f"modules missing from the README's tree: {sorted(on_disk - drawn)}"
    assert not drawn - on_disk, f"the README draws modules that do not exist: {sorted(drawn - on_disk)}"
