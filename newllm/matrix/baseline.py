"""The one file format for measured configurations of the matrix: results and committed baselines.

A file is a JSON object::

    {"format": "newllm-matrix/1", "about": "...", "source": {commit, command, machine, torch, ...},
     "settings": {...what every configuration was made under...},
     "configurations": {NAME: {"settings": {...this configuration's axes...},
                               "tokens": N, "converged": K, "mean_iterations": M,
                               ["mean_evaluations": E, "epochs": P, "optimizer_steps": S,
                                "iterations": [per-token iterations, for N <= 10],
                                "rounding_sensitive": bool]}}}

``mean_iterations`` and ``mean_evaluations`` average over every token (a token that did not converge
counts its last iteration, ``max_iterations``). A pytest-benchmark JSON is read as such a file: each
benchmark with ``extra_info["configuration"]`` (a ``name`` plus the entry) is one configuration, and the
run's top-level ``"matrix"`` holds the settings (written by ``bench/conftest.py``).
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any

import torch

from ..result import FixedPointResult
from ..runs.jsonio import atomic_write_json

FORMAT = "newllm-matrix/1"
#: Counts where higher is worse (gated with the iteration slack); all optional but mean_iterations.
COSTS = ("mean_iterations", "mean_evaluations", "epochs", "optimizer_steps")
#: Per-token iterations are stored up to this many tokens.
PER_TOKEN_UP_TO = 10


class FormatError(ValueError):
    """A file that is not a readable result or baseline of :data:`FORMAT`."""


def record(result: FixedPointResult) -> dict[str, Any]:
    """A solve's counts: ``tokens``, ``converged``, ``mean_iterations``, ``mean_evaluations`` (and
    ``iterations`` per token for small solves)."""
    out: dict[str, Any] = {
        "tokens": result.num_tokens,
        "converged": int(result.converged.sum()),
        "mean_iterations": result.mean_iterations,
        "mean_evaluations": float(result.evaluations.double().mean()),
    }
    if result.num_tokens <= PER_TOKEN_UP_TO:
        out["iterations"] = [int(v) for v in result.iterations.flatten().tolist()]
    return out


def document(
    configurations: dict[str, dict[str, Any]], settings: dict[str, Any], *, about: str, command: str = ""
) -> dict[str, Any]:
    """A result/baseline document of ``configurations`` made under ``settings``."""
    return {
        "format": FORMAT,
        "about": about,
        "source": {
            "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "command": command,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "settings": settings,
        "configurations": dict(sorted(configurations.items())),
    }


def from_benchmark(data: dict[str, Any], path: str = "") -> dict[str, Any]:
    """The configurations of a pytest-benchmark JSON (see the module doc) as a document."""
    configs: dict[str, dict[str, Any]] = {}
    for b in data["benchmarks"]:
        for c in (b.get("extra_info") or {}).get("configurations", []):
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                raise FormatError(
                    f"{path}: benchmark {b.get('fullname')!r} has a configuration without a name"
                )
            configs[c["name"]] = {k: v for k, v in c.items() if k != "name"}
    doc = {
        "format": FORMAT,
        "about": f"configurations of the pytest-benchmark run {path}",
        "source": {"run_datetime": data.get("datetime"), "commit": (data.get("commit_info") or {}).get("id")},
        "settings": data.get("matrix", {}),
        "configurations": configs,
    }
    return doc


def read(path: str | Path) -> dict[str, Any]:
    """A validated document from ``path`` (a file of :data:`FORMAT` or a pytest-benchmark JSON);
    :class:`FormatError` naming the file and the problem otherwise."""
    p = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise FormatError(f"cannot read {p!r} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise FormatError(f"{p} is not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("benchmarks"), list):
        data = from_benchmark(data, p)
    validate(data, p)
    return data


def validate(doc: Any, path: str = "") -> None:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FormatError(f"{path} is not a {FORMAT!r} file nor a pytest-benchmark JSON")
    configs = doc.get("configurations")
    if not isinstance(configs, dict) or not isinstance(doc.get("settings"), dict):
        raise FormatError(f"{path}: expected 'settings' and 'configurations' objects")
    for name, c in configs.items():
        where = f"{path}: configuration {name!r}"
        if not isinstance(c, dict):
            raise FormatError(f"{where} is not an object")
        for k in ("tokens", "converged"):
            if isinstance(c.get(k), bool) or not isinstance(c.get(k), int) or c[k] < 0:
                raise FormatError(f"{where}: {k!r} must be an integer >= 0, got {c.get(k)!r}")
        if c["converged"] > c["tokens"]:
            raise FormatError(f"{where}: converged {c['converged']} exceeds tokens {c['tokens']}")
        for k in COSTS:
            if k in c and (isinstance(c[k], bool) or not isinstance(c[k], int | float)):
                raise FormatError(f"{where}: {k!r} must be a number, got {c[k]!r}")
        if "mean_iterations" not in c:
            raise FormatError(f"{where} has no 'mean_iterations'")


def write(path: str | Path, doc: dict[str, Any]) -> None:
    validate(doc, str(path))
    atomic_write_json(path, doc)
