"""Builders and damage helpers for the run-directory tests: tiny Phase 1 / Phase 2 runs, byte edits."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from newllm.cli.main import main
from newllm.phase1 import Phase1Config, train_phase1
from tests.helpers import tiny_model

SAMPLES = [[1, 2, 3, 4, 5], [6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16, 17, 18], [3, 4, 5, 6]]
DATA = {
    "source": "local.jsonl",
    "split": "train_sft",
    "samples": 5,
    "max_length": 8,
    "conversation_ids": ["c0", "c1", "c2", "c3", "c4"],
}


def phase1_run(out: Path, **cfg) -> Path:
    """A finished tiny Phase 1 run with a data snapshot: lists model, optimizer, cache and data."""
    config = Phase1Config(**{"epochs": 1, "loop": "batched", **cfg})
    train_phase1(tiny_model(), SAMPLES, config, out_dir=out, progress=False, data=DATA)
    return out


def phase2_cli(phase1: Path, out: Path, *extra: str) -> list[str]:
    """argv of ``newllm phase2`` on ``phase1`` with carry contexts (so the Phase 2 run keeps a cache)."""
    argv = ["phase2", "--checkpoint", str(phase1), "--cache-mode", "carry", "--val-fraction", "0.4"]
    return [*argv, "--out", str(out), "--quiet", "--json", *extra]


def phase2_run(phase1: Path, out: Path) -> Path:
    """A finished one-epoch Phase 2 run: lists model, optimizer, head and cache."""
    assert main(phase2_cli(phase1, out, "--epochs", "1")) == 0
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def manifest(d: Path) -> dict:
    return json.loads((d / "checkpoint.json").read_text())


def write_manifest(d: Path, m: dict) -> None:
    (d / "checkpoint.json").write_text(json.dumps(m))


def listed(d: Path, kind: str) -> Path:
    return d / manifest(d)["files"][kind]["name"]


def relist(d: Path, kind: str) -> None:
    """Make the manifest vouch for the current bytes of the ``kind`` file (a tamperer who edits both)."""
    m = manifest(d)
    data = (d / m["files"][kind]["name"]).read_bytes()
    m["files"][kind].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    write_manifest(d, m)


def tensor_span(path: Path, name: str) -> tuple[int, int]:
    """Byte range ``[a, b)`` of tensor ``name``'s data in a safetensors file."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    a, b = json.loads(raw[8 : 8 + n])[name]["data_offsets"]
    return 8 + n + a, 8 + n + b


def data_offset(path: Path) -> int:
    """Where the data region starts: after the header (safetensors), in the middle (JSON)."""
    raw = path.read_bytes()
    if path.suffix == ".json":
        return len(raw) // 2
    return 8 + int.from_bytes(raw[:8], "little")


def flip_byte(path: Path, at: int, mask: int = 0x01) -> None:
    b = bytearray(path.read_bytes())
    b[at] ^= mask
    path.write_bytes(bytes(b))


def flip_data_byte(path: Path) -> None:
    raw = path.read_bytes()
    at = data_offset(path) + (len(raw) - data_offset(path)) // 3
    flip_byte(path, at, 0x01 if path.suffix != ".json" else 0x02)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


def delete(path: Path) -> None:
    path.unlink()
