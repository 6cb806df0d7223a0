"""Settings read from the environment are bad input like arguments: a cache variable naming a file (or a
path under a file) is one ``error:`` line naming the variable, before any work starts."""

from __future__ import annotations

import json

import pytest

from tests.cli_support import run
from tests.data_support import require_data_packages

require_data_packages()

CORPUS = [
    {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "ok"}]}
    for i in range(3)
]

# (case, variable, its value relative to the scratch directory, argv)
CASES = [
    ("data cache is a file", "NEWLLM_CACHE", "FILE", ["data", "info", "--source", "c.jsonl", "--quiet"]),
    ("data cache under a file", "NEWLLM_CACHE", "FILE/sub", ["data", "info", "--source", "c.jsonl", "--quiet"]),
    ("XDG cache is a file", "XDG_CACHE_HOME", "FILE", ["data", "info", "--source", "c.jsonl", "--quiet"]),
    ("model cache is a file", "NEWLLM_CACHE_DIR", "FILE", ["reproduce", "--tiny", "--quick", "--quiet", "--out", "r"]),
]  # fmt: skip


@pytest.mark.parametrize("case, var, value, argv", CASES, ids=[c[0] for c in CASES])
def test_a_cache_variable_naming_a_file(case, var, value, argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in CORPUS))
    for v in ("NEWLLM_CACHE", "NEWLLM_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(var, value)
    shown = {"XDG_CACHE_HOME": f"$XDG_CACHE_HOME '{value}/newllm'"}.get(var, f"${var} '{value}'")
    line = run(argv).error(shown, "'FILE' is a file, not a directory")
    assert "Errno" not in line
    assert not (tmp_path / "r").exists()  # refused before the work began
