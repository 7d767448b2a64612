"""The import direction of DESIGN.md, held by an AST scan (no imports executed).

serving imports none of the others (it ships alone in its image); probes never imports
daemon or sandbox; daemon never imports sandbox except lazily (inside a function) in its
CLI and demo entry points; sandbox never imports daemon or probes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "serving": {"daemon", "probes", "sandbox"},
    "probes": {"daemon", "sandbox"},
    "daemon": {"sandbox"},
    "sandbox": {"daemon", "probes"},
}
# Modules of `daemon` allowed to import `sandbox` lazily, inside a function body.
LAZY_SANDBOX_OK = {"daemon/cli.py", "daemon/demo.py"}


def _imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """(top-level package imported, whether at module level) for every import."""
    found: list[tuple[str, bool]] = []
    module_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[0], id(node) in module_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module.split(".")[0], id(node) in module_level))
    return found


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_direction(package: str) -> None:
    files = _files(package)
    assert files, f"package {package} has no modules"
    bad: list[str] = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for top, at_module_level in _imports(ast.parse(path.read_text(), str(path))):
            if top not in FORBIDDEN[package]:
                continue
            if top == "sandbox" and rel in LAZY_SANDBOX_OK and not at_module_level:
                continue
            bad.append(f"{rel} imports {top}")
    assert not bad, "import direction broken:\n" + "\n".join(bad)


def test_the_scanner_sees_lazy_and_module_level_imports() -> None:
    tree = ast.parse("import a\nfrom b.c import d\ndef f():\n    import sandbox.x\n")
    assert _imports(tree) == [("a", True), ("b", True), ("sandbox", False)]
