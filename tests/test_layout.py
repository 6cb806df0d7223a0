"""The package's import graph runs one way: core <- run infrastructure / data <- Phase 1 <- Phase 2 <-
experiments <- tools <- cli. A module may import its own layer and the layers below, never above."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "newllm"

#: Layer of each first-level name under newllm/ (a top-level module or subpackage); core is 0.
LAYERS = {
    "runs": 1,
    "data": 1,
    "phase1": 2,
    "phase2": 3,
    "matrix": 4,
    "reproduce": 5,
    "testing": 5,
    "recipes": 5,
    "tools": 6,
    "cli": 7,
}
#: The package facade and ``python -m newllm`` may import anything.
FACADES = {"__init__", "__main__"}


def layer_of(first: str) -> int:
    return LAYERS.get(first, 0)  # every top-level module, solvers/ and contraction/ are the core


def first_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def imported(path: Path) -> list[tuple[int, str]]:
    """``(line, first name under newllm)`` of every import of a newllm module in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = list(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        pkg = list(path.relative_to(PACKAGE.parent).parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            mods = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for m in mods:
            parts = m.split(".")
            if parts[0] == "newllm" and len(parts) > 1:
                out.append((node.lineno, parts[1]))
    return out


def violations(root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        first = first_name(path)
        if first in FACADES:
            continue
        mine = layer_of(first)
        for line, target in imported(path):
            if target in FACADES:
                bad.append(f"{path.relative_to(root.parent)}:{line} imports the package facade newllm.{target}")
            elif layer_of(target) > mine or (layer_of(target) == mine and mine > 0 and target != first):
                bad.append(f"{path.relative_to(root.parent)}:{line}: {first} (layer {mine}) imports {target} "
                           f"(layer {layer_of(target)})")
    return bad


def test_the_import_graph_is_one_way():
    found = violations()
    assert not found, "imports against the layering (see tests/test_layout.py):\n" + "\n".join(found)


def test_the_layering_check_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "newllm"
    (pkg / "runs").mkdir(parents=True)
    (pkg / "model.py").write_text("from .runs.lock import RunLock\n")  # core importing run infrastructure
    (pkg / "runs" / "lock.py").write_text("from ..model import x\nfrom ..data import y\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, pkg
    try:
        found = violations(pkg)
    finally:
        PACKAGE = saved
    assert [f.split(": ", 1)[-1] for f in found] == [
        "model (layer 0) imports runs (layer 1)",
        "runs (layer 1) imports data (layer 1)",
    ]
