"""The package's shape, checked from its source (ast, nothing imported): training/ below the
stages after it (it imports nothing of labels/, scan/, data/ or report/ when it loads: the
composition root hands it the optional labelling callback), and no source file over 400 lines
(short files with one job each). test_pages.test_no_import_cycle checks that no import closes a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sae_lightning"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_time_imports(name: str, path: Path) -> set[str]:
    """The package modules `name` imports when it loads: module-level statements, outside
    `if TYPE_CHECKING:`; a function's own imports run later and cannot close a cycle at import."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body + getattr(node, "orelse", []) + getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = node.module if not node.level else ".".join(filter(None, [base, node.module]))
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)

    visit(ast.parse(path.read_text()).body)
    out = set()
    for target in found:
        while target and target not in MODULES:  # `from pkg import name`: the package itself
            target = target.rpartition(".")[0]
        parts = target.split(".")
        out.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))  # loading a.b.c loads a.b first
    # a module's own packages are loaded before it (their __init__ importing it is the usual pattern)
    own = {name.rsplit(".", i)[0] for i in range(name.count(".") + 1)}
    return out - own


GRAPH = {name: import_time_imports(name, path) for name, path in MODULES.items()}


def test_the_walk_reads_the_real_imports():
    assert "sae_lightning.run_dir" in GRAPH["sae_lightning.run_reader"]
    assert "sae_lightning.labels.feature_table" in GRAPH["sae_lightning.labels.training_callback"]
    assert "sae_lightning.models" not in GRAPH["sae_lightning.run_reader"]  # imported in a function only


def test_training_does_not_import_the_stages_after_it():
    above = ("sae_lightning.labels", "sae_lightning.scan", "sae_lightning.data", "sae_lightning.report")
    leaks = {
        name: sorted(t for t in targets if t.startswith(above))
        for name, targets in GRAPH.items()
        if name.startswith("sae_lightning.training")
    }
    assert {name: t for name, t in leaks.items() if t} == {}


def test_no_source_file_over_400_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
