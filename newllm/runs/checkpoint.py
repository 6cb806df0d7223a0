"""Checkpoints on disk: safetensors tensors + a JSON manifest with SHA-256 checksums. Never pickle.

Layout of a run directory::

    checkpoint.json            manifest (written last, atomically): epoch, files + sha256, configs, state
    model-E.safetensors        weights after epoch E
    optimizer-E.safetensors    optimizer tensors + RNG state after epoch E
    NAME-E.safetensors         optional extra tensor files (e.g. Phase 2's ``head``), same rules

Tensor files carry the epoch in their names, so a crash while writing epoch E+1 leaves the
manifest pointing at the complete epoch-E files: a half-written checkpoint is never taken for a
complete one. Older files are removed only after the new manifest is in place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..config import ModelConfig
from ..model import CVFPModel
from .jsonio import atomic_write_bytes, atomic_write_json

MANIFEST = "checkpoint.json"
FORMAT = "newllm-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted, tampered with, or does not fit the model."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode), the manifest, and optional training state."""

    model: CVFPModel
    manifest: dict[str, Any]
    path: Path
    optimizer_tensors: dict[str, torch.Tensor] | None = None
    #: Extra tensor files asked for with ``load_checkpoint(..., extras=(name, ...))``, verified.
    extras: dict[str, dict[str, torch.Tensor]] | None = None

    @property
    def epoch(self) -> int:
        return int(self.manifest["epoch"])

    @property
    def tag(self) -> str:
        """Identifies the weights: ``<model file sha256[:16]>@epoch<E>``."""
        name = self.manifest["files"]["model"]["name"]
        return f"{self.manifest['files']['model']['sha256'][:16]}@epoch{self.epoch}:{name}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    directory: str | Path,
    model: CVFPModel,
    *,
    epoch: int,
    optimizer_tensors: dict[str, torch.Tensor] | None = None,
    state: dict[str, Any] | None = None,
    extras: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write the tensors for ``epoch``, then the manifest; return the manifest path.

    ``extras`` maps a file name (lowercase letters) to more tensors, written as ``NAME-E.safetensors``.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    files["model"] = _write_tensors(d / f"model-{epoch:04d}.safetensors", weights)
    if optimizer_tensors is not None:
        opt = {k: v.detach().to("cpu").contiguous() for k, v in optimizer_tensors.items()}
        files["optimizer"] = _write_tensors(d / f"optimizer-{epoch:04d}.safetensors", opt)
    for name, tensors in (extras or {}).items():
        if not name.isalpha() or not name.islower() or name in ("model", "optimizer"):
            raise ValueError(
                f"extra checkpoint file names must be lowercase letters, not model/optimizer; got {name!r}"
            )
        ext = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        files[name] = _write_tensors(d / f"{name}-{epoch:04d}.safetensors", ext)
    old = _referenced_files(d)
    manifest = {
        "format": FORMAT,
        "epoch": epoch,
        "files": files,
        "model_config": model.config.to_dict(),
        "state": state or {},
    }
    atomic_write_json(d / MANIFEST, manifest)
    keep = {f["name"] for f in files.values()}
    for name in old - keep:
        (d / name).unlink(missing_ok=True)
    return d / MANIFEST


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    data = save(tensors, metadata={"format": FORMAT})
    atomic_write_bytes(path, data)
    return {"name": path.name, "sha256": hashlib.sha256(data).hexdigest()}


def _referenced_files(d: Path) -> set[str]:
    try:
        m = json.loads((d / MANIFEST).read_text())
        return {f["name"] for f in m.get("files", {}).values()}
    except (OSError, ValueError, AttributeError, TypeError):
        return set()


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a checkpoint directory, validated (CheckpointError otherwise)."""
    d = Path(directory)
    path = d / MANIFEST
    if not d.exists():
        raise CheckpointError(f"checkpoint directory {str(d)!r} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{str(d)!r} is not a checkpoint: no {MANIFEST} in it")
    try:
        m = json.loads(path.read_text())
    except OSError as exc:
        raise CheckpointError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{str(path)!r} is corrupted (not valid JSON: {exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a {FORMAT} manifest")
    for key in ("epoch", "files", "model_config"):
        if key not in m:
            raise CheckpointError(f"{str(path)!r} lacks the key {key!r}")
    if "model" not in m["files"]:
        raise CheckpointError(f"{str(path)!r} names no model file")
    return m


def _load_verified(d: Path, entry: dict[str, str]) -> dict[str, torch.Tensor]:
    name = entry.get("name", "")
    if Path(name).name != name or not name.endswith(".safetensors"):
        raise CheckpointError(
            f"manifest names an unexpected file {name!r}: only .safetensors in the directory"
        )
    path = d / name
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing")
    digest = sha256_file(path)
    if digest != entry.get("sha256"):
        raise CheckpointError(
            f"checkpoint file {str(path)!r} is corrupted or was modified: sha256 {digest[:16]}... does not match "
            f"the manifest's {str(entry.get('sha256'))[:16]}..."
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read tensors from {str(path)!r}: {exc}") from None


def load_checkpoint(
    directory: str | Path,
    *,
    with_optimizer: bool = False,
    expect_config: ModelConfig | None = None,
    extras: tuple[str, ...] = (),
) -> Checkpoint:
    """Load and verify a checkpoint (checksums, keys, shapes); the model is returned in eval mode.

    ``extras`` names extra tensor files that must be present (CheckpointError otherwise).
    """
    d = Path(directory)
    m = read_manifest(d)
    try:
        cfg = ModelConfig.from_dict(m["model_config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {str(d)!r} holds an invalid model config: {exc}") from None
    if expect_config is not None and expect_config != cfg:
        diff = {k: (v, getattr(cfg, k)) for k, v in expect_config.to_dict().items() if cfg.to_dict()[k] != v}
        raise CheckpointError(
            f"checkpoint {str(d)!r} does not match the requested model config: {diff} (asked, found)"
        )
    tensors = _load_verified(d, m["files"]["model"])
    model = CVFPModel(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unknown = sorted(set(tensors) - set(expected))
    if missing or unknown:
        raise CheckpointError(
            f"checkpoint {str(d)!r} does not fit the model: missing {missing[:5]}, unknown {unknown[:5]}"
        )
    for k, v in expected.items():
        if tensors[k].shape != v.shape:
            raise CheckpointError(
                f"checkpoint {str(d)!r}: tensor {k!r} has shape {tuple(tensors[k].shape)}, the config needs "
                f"{tuple(v.shape)}"
            )
        if not bool(torch.isfinite(tensors[k]).all()):
            raise CheckpointError(f"checkpoint {str(d)!r}: tensor {k!r} holds NaN or inf values")
    model.load_state_dict(tensors)
    model.eval()
    opt = None
    if with_optimizer and "optimizer" in m["files"]:
        opt = _load_verified(d, m["files"]["optimizer"])
    ext = {}
    for name in extras:
        if name not in m["files"]:
            raise CheckpointError(
                f"checkpoint {str(d)!r} has no {name!r} file (it holds {sorted(m['files'])})"
            )
        ext[name] = _load_verified(d, m["files"][name])
    return Checkpoint(model=model, manifest=m, path=d, optimizer_tensors=opt, extras=ext or None)


def load_model(directory: str | Path) -> CVFPModel:
    """The verified model of a checkpoint directory, in eval mode."""
    return load_checkpoint(directory).model


# --- optimizer state <-> flat tensors (no pickle) -------------------------------------------------


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Flatten ``optimizer.state_dict()`` into tensors ``state.<param>.<key>`` and JSON-ready groups."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            t = val if isinstance(val, torch.Tensor) else torch.tensor(val)
            tensors[f"state.{pid}.{key}"] = t
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]
) -> None:
    """Inverse of :func:`optimizer_to_tensors`: load the state into ``optimizer`` in place."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        if not name.startswith("state."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = t
    fixed = []
    for g in groups:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        fixed.append(g)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": fixed})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"optimizer state does not fit: {exc}") from None
