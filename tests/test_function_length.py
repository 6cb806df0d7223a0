"""No function in ``newllm/`` is longer than :data:`LIMIT` lines (signature, docstring and body; blank
lines and comment-only lines inside count too): long functions are where a second copy of a rule hides."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "newllm"
LIMIT = 80


def long_functions(root: Path = PACKAGE, limit: int = LIMIT) -> list[str]:
    """``path:line name (N lines)`` for every function or method over ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = node.end_lineno - first + 1
                if n > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_function_in_the_package_is_over_the_limit():
    found = long_functions()
    assert not found, f"functions over {LIMIT} lines (split them):\n" + "\n".join(found)


def test_the_length_check_counts_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "m.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path) == [f"{tmp_path.name}/m.py:5 long ({LIMIT + 1} lines)"]
    assert long_functions(tmp_path, limit=LIMIT + 1) == []
