"""Reading pytest-benchmark JSON for ``bench-report``: every entry checked against :data:`SCHEMA` first.

A file is read with :func:`newllm.textfiles.read_json` (regular file, UTF-8, valid JSON). It must be
an object whose ``benchmarks`` is a list of objects (what ``pytest bench --benchmark-json FILE``
writes); an entry whose ``extra_info.kind`` is in :data:`SCHEMA` must hold the keys listed for its
kind with values of the listed JSON types, else one ValueError names the file, the entry, the key,
the value and what was expected. Entries of other kinds are skipped. To follow a change of the
benchmark format, edit :data:`SCHEMA` (one table).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..textfiles import read_json


@dataclass(frozen=True)
class Key:
    """A key of an entry: its name (or alternative names, the first present is used) and whether it may be
    missing."""

    names: tuple[str, ...]
    optional: bool = False

    def __str__(self) -> str:
        return " or ".join(repr(n) for n in self.names)


#: JSON types by name: what a value must be (bool is never a number).
TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float)}


def _k(*names: str, optional: bool = False) -> Key:
    return Key(names, optional)


_ITER_COUNTS = {
    _k(n): "number"
    for n in ("median_iterations", "p90_iterations", "max_iterations", "mean_iterations", "rate")
}
_P1_COUNTS = {
    _k(n, optional=True): "number"
    for n in ("spec_epochs_to_95", "batched_epochs_to_95", "spec_optimizer_steps", "batched_optimizer_steps")
}

#: extra_info keys of each kind of benchmark entry: JSON type name, or a nested table for an object.
SCHEMA: dict[str, dict[Key, Any]] = {
    "iterations": {
        _k("device"): "string",
        _k("arch"): "string",
        _k("state"): "string",
        _k("rule", optional=True): "string",  # the decision rule (matrix.axes)
        _k("tolerance", optional=True): "string",  # its name in files written before the glossary
        _k("method"): "string",
        _k("tokens"): "integer",
        _k("counts"): _ITER_COUNTS,
    },
    "throughput": {
        _k("device"): "string",
        _k("dtype"): "string",
        _k("arch"): "string",
        _k("tokens"): "integer",
        _k("token_iterations_per_s"): "number",
        _k("solve_gflops"): "number",
        _k("roofline_gflops"): "number",
        _k("roofline_fraction"): "number",
    },
    "loop_speedup": {
        _k("device"): "string",
        _k("arch"): "string",
        _k("tokens"): "integer",
        _k("iterations"): "integer",
        _k("speedup"): "number",
    },
    "phase1_time_to_95": {
        _k("device"): "string",
        _k("arch"): "string",
        _k("tokens"): "integer",
        _k("vocab_size"): "integer",
        _k("speedup"): "number",
        _k("counts", optional=True): _P1_COUNTS,
    },
}
KINDS = tuple(SCHEMA)
FORMAT_HINT = "bench-report reads what `pytest bench --benchmark-json FILE` writes"


def load_entries(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """``extra_info`` of every benchmark (of a known kind) in the given files, checked against
    :data:`SCHEMA`, with ``name`` and ``stats_min_s`` (the file's timing) added."""
    out = []
    for path in paths:
        where = f"benchmark file {str(path)!r}"
        data = read_json(path, "benchmark file", constants=True)
        benches = data.get("benchmarks") if isinstance(data, dict) else None
        if not isinstance(benches, list):
            kind = f"format {data['format']!r}" if isinstance(data, dict) and "format" in data else None
            if kind is None and isinstance(benches, dict):
                kind = "benchmarks by name (a newllm baseline)"
            raise ValueError(
                f"{where} is not pytest-benchmark JSON"
                + (f" (it holds {kind})" if kind else "")
                + f": expected an object whose 'benchmarks' is a list; {FORMAT_HINT}"
            )
        for i, b in enumerate(benches):
            entry = _entry(b, f"{where}: benchmarks[{i}]")
            if entry is not None:
                out.append(entry)
    return out


def _entry(b: Any, where: str) -> dict[str, Any] | None:
    if not isinstance(b, dict):
        raise ValueError(f"{where} is {type(b).__name__}: expected an object; {FORMAT_HINT}")
    extra = b.get("extra_info", {})
    if not isinstance(extra, dict):
        raise ValueError(f"{where}: extra_info is {type(extra).__name__}: expected an object")
    kind = extra.get("kind")
    if not isinstance(kind, str) or kind not in SCHEMA:  # a list or object as kind: not ours either
        return None
    name = b.get("name") if isinstance(b.get("name"), str) else None
    _check(extra, SCHEMA[kind], f"{where} ({name or b.get('fullname', '?')}, kind {kind!r})")
    stats = b.get("stats")
    minimum = stats.get("min") if isinstance(stats, dict) else None
    return {
        **extra,
        "name": name,
        "stats_min_s": minimum
        if isinstance(minimum, int | float) and not isinstance(minimum, bool)
        else None,
    }


def _check(obj: dict[str, Any], table: dict[Key, Any], where: str) -> None:
    for key, spec in table.items():
        name = next((n for n in key.names if n in obj), None)
        if name is None:
            if key.optional:
                continue
            raise ValueError(f"{where} has no {key}: expected {_expected(spec)}")
        value = obj[name]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise ValueError(f"{where}: {name} is {value!r:.60}: expected {_expected(spec)}")
            _check(value, spec, f"{where}: {name}")
        elif isinstance(value, bool) or not isinstance(value, TYPES[spec]):
            raise ValueError(f"{where}: {name} is {value!r:.60}: expected {_expected(spec)}")


def _expected(spec: Any) -> str:
    if isinstance(spec, dict):
        return "an object with " + ", ".join(
            f"{k} ({_expected(v)})" for k, v in spec.items() if not k.optional
        )
    return f"a JSON {spec}" if spec != "integer" else "an integer"
