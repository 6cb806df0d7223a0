"""The manifest of a run directory (``checkpoint.json``): which files the run holds, with their SHA-256.

A manifest is validated like a config before anything in it is used (CheckpointError naming the file
otherwise)::

    format        "newllm-run-2"  ("newllm-checkpoint-1": the previous format, read-only, see docs/runs.md)
    kind          "model" | "phase1" | "phase2"   (what wrote it)
    epoch         integer in [0, 1000000]: the last complete epoch
    files         {file kind: {"name": basename, "sha256": 64 hex digits, "bytes": size}}
    model_config  a ModelConfig (checked by ModelConfig.from_dict when the model is loaded)
    state         a JSON object owned by the trainer that wrote it (settings, history, ...)

File kinds (:data:`FILE_KINDS`) fix each file's name: ``model-E.safetensors`` (``E``: the epoch, 4 digits),
``optimizer-E.safetensors``, ``head-E.safetensors``, ``cache.safetensors``, ``data.json``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _fields as F

MANIFEST = "checkpoint.json"
FORMAT = "newllm-run-2"
#: Manifests of newllm before run directories listed every file: weights load, nothing else (docs/runs.md).
LEGACY_FORMAT = "newllm-checkpoint-1"
KINDS = ("model", "phase1", "phase2")
MAX_EPOCH = 1_000_000


class CheckpointError(ValueError):
    """A run directory or checkpoint that is missing, corrupted, tampered with, or does not fit."""


@dataclass(frozen=True)
class FileKind:
    """How a file of this kind is named: ``KIND-EEEE.ext`` when ``per_epoch``, else ``KIND.ext``."""

    ext: str
    per_epoch: bool

    def name(self, kind: str, epoch: int) -> str:
        return f"{kind}-{epoch:04d}{self.ext}" if self.per_epoch else f"{kind}{self.ext}"


#: Every kind of file a run directory may list (the registry; an unknown kind is refused).
FILE_KINDS: dict[str, FileKind] = {
    "model": FileKind(".safetensors", per_epoch=True),
    "optimizer": FileKind(".safetensors", per_epoch=True),
    "head": FileKind(".safetensors", per_epoch=True),
    "cache": FileKind(".safetensors", per_epoch=False),
    "data": FileKind(".json", per_epoch=False),
}

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(safetensors|json)")
_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileEntry:
    """One listed file: its name in the directory, SHA-256 (hex) and size in bytes (None: legacy)."""

    name: str
    sha256: str
    bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class Manifest:
    format: str
    kind: str
    epoch: int
    files: dict[str, FileEntry]
    model_config: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def legacy(self) -> bool:
        return self.format == LEGACY_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "kind": self.kind,
            "epoch": self.epoch,
            "files": {k: e.to_dict() for k, e in self.files.items()},
            "model_config": self.model_config,
            "state": self.state,
        }


def parse_manifest(data: bytes, path: Path) -> Manifest:
    """Validate the bytes of a manifest file; every failure is a CheckpointError naming ``path``."""
    where = repr(str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{where} is not a newllm manifest: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise CheckpointError(f"{where} is corrupted (not valid JSON: {exc})") from None
    try:
        return manifest_from_dict(obj)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


def manifest_from_dict(obj: Any) -> Manifest:
    """A :class:`Manifest` from a JSON object; ValueError naming the bad field otherwise."""
    if not isinstance(obj, dict):
        raise ValueError(f"a manifest is a JSON object, got {type(obj).__name__}")
    fmt = obj.get("format")
    if fmt not in (FORMAT, LEGACY_FORMAT):
        raise ValueError(f"format must be {FORMAT!r} (or the older {LEGACY_FORMAT!r}), got {fmt!r}")
    legacy = fmt == LEGACY_FORMAT
    keys = {"format", "epoch", "files", "model_config", "state"} | (set() if legacy else {"kind"})
    unknown = sorted(str(k) for k in obj if k not in keys)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(sorted(keys))}"
        )
    missing = sorted(k for k in keys - {"state"} if k not in obj)
    if missing:
        raise ValueError(f"lacks the key(s) {', '.join(map(repr, missing))}")
    state = obj.get("state", {})
    if not isinstance(state, dict):
        raise ValueError(f"state must be a JSON object, got {type(state).__name__}")
    if not isinstance(obj["model_config"], dict):
        raise ValueError(f"model_config must be a JSON object, got {type(obj['model_config']).__name__}")
    kind = _legacy_kind(state) if legacy else F.check_choice("kind", obj["kind"], KINDS)
    return Manifest(
        format=fmt,
        kind=kind,
        epoch=F.check_int("epoch", obj["epoch"], 0, MAX_EPOCH),
        files=_files(obj["files"], legacy),
        model_config=obj["model_config"],
        state=state,
    )


def _files(files: Any, legacy: bool) -> dict[str, FileEntry]:
    if not isinstance(files, dict):
        raise ValueError(f"files must be a JSON object, got {type(files).__name__}")
    if "model" not in files:
        raise ValueError("files names no model file")
    return {k: _entry(k, e, legacy) for k, e in files.items()}


def _entry(kind: str, e: Any, legacy: bool) -> FileEntry:
    if kind not in FILE_KINDS:
        raise ValueError(f"files: unknown file kind {kind!r}; known: {', '.join(FILE_KINDS)}")
    what = f"files.{kind}"
    if not isinstance(e, dict) or not {"name", "sha256"} <= set(e) or set(e) - {"name", "sha256", "bytes"}:
        raise ValueError(f"{what} must be an object with the keys name, sha256, bytes; got {e!r}")
    name, sha = e["name"], e["sha256"]
    ext = FILE_KINDS[kind].ext
    if not isinstance(name, str) or not _NAME.fullmatch(name) or not name.endswith(ext):
        raise ValueError(
            f"{what}.name: manifest names an unexpected file {name!r}: expected a plain {ext} file name "
            f"in the directory (only .safetensors and .json, never pickles)"
        )
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        raise ValueError(f"{what}.sha256 must be 64 lowercase hex digits, got {sha!r}")
    size = e.get("bytes")
    if size is None and not legacy:
        raise ValueError(f"{what}.bytes must be an integer, got None")
    if size is not None:
        F.check_int(f"{what}.bytes", size, 0, None)
    return FileEntry(name=name, sha256=sha, bytes=size)


def _legacy_kind(state: dict[str, Any]) -> str:
    if "phase2_config" in state:
        return "phase2"
    return "phase1" if "phase1_config" in state else "model"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
