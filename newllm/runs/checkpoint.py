"""Checkpoints: a model (and optionally its training state) in a run directory. Never pickle.

``save_checkpoint``/``load_checkpoint`` are the model-level entry points of :class:`~newllm.runs.rundir.RunDir`
(layout, manifest and verification: docs/runs.md). Loading checks every listed file's size and SHA-256,
then that the tensors fit the manifest's ModelConfig (keys, shapes, finite values).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import ModelConfig
from ..model import CVFPModel
from .manifest import FILE_KINDS, FORMAT, MANIFEST, CheckpointError, FileEntry, Manifest
from .rundir import RunDir, tensor_bytes

__all__ = [
    "FORMAT",
    "MANIFEST",
    "Checkpoint",
    "CheckpointError",
    "load_checkpoint",
    "load_model",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "read_manifest",
    "save_checkpoint",
]


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode), the manifest, and optional training state."""

    model: CVFPModel
    manifest: Manifest
    path: Path
    optimizer_tensors: dict[str, torch.Tensor] | None = None
    #: Extra tensor files asked for with ``load_checkpoint(..., extras=(kind, ...))``, verified.
    extras: dict[str, dict[str, torch.Tensor]] | None = None

    @property
    def epoch(self) -> int:
        return self.manifest.epoch

    @property
    def state(self) -> dict[str, Any]:
        return self.manifest.state

    @property
    def tag(self) -> str:
        """Identifies the weights: ``<model file sha256[:16]>@epoch<E>:<file name>``."""
        e = self.manifest.files["model"]
        return f"{e.sha256[:16]}@epoch{self.epoch}:{e.name}"


def save_checkpoint(
    directory: str | Path | RunDir,
    model: CVFPModel,
    *,
    epoch: int,
    optimizer_tensors: dict[str, torch.Tensor] | None = None,
    state: dict[str, Any] | None = None,
    extras: dict[str, dict[str, torch.Tensor]] | None = None,
    files: dict[str, FileEntry] | None = None,
    kind: str = "model",
) -> Path:
    """Write the tensors for ``epoch``, then the manifest (listing them and ``files``); return its path.

    ``extras`` maps a registered file kind (e.g. ``head``) to more tensors, written as ``KIND-E.safetensors``.
    """
    rd = directory if isinstance(directory, RunDir) else RunDir(directory)
    tensors = {"model": model.state_dict(), **({"optimizer": optimizer_tensors} if optimizer_tensors else {})}
    for name in extras or {}:
        if name not in FILE_KINDS or name in ("model", "optimizer") or FILE_KINDS[name].ext != ".safetensors":
            raise ValueError(
                f"extra checkpoint files must be one of the tensor file kinds head, cache; got {name!r}"
            )
    tensors.update(extras or {})
    listed = {k: rd.write(k, tensor_bytes(t), epoch=epoch) for k, t in tensors.items()}
    return rd.commit(
        kind=kind,
        epoch=epoch,
        model_config=model.config.to_dict(),
        state=state or {},
        files={**listed, **(files or {})},
    )


def read_manifest(directory: str | Path | RunDir) -> dict[str, Any]:
    """The validated manifest of a run directory, as a dict (CheckpointError otherwise)."""
    rd = directory if isinstance(directory, RunDir) else RunDir(directory)
    return rd.manifest().to_dict()


def load_checkpoint(
    directory: str | Path | RunDir,
    *,
    with_optimizer: bool = False,
    expect_config: ModelConfig | None = None,
    extras: tuple[str, ...] = (),
) -> Checkpoint:
    """Load and verify a checkpoint (checksums, keys, shapes); the model is returned in eval mode.

    ``extras`` names extra tensor files that must be listed (CheckpointError otherwise).
    """
    rd = directory if isinstance(directory, RunDir) else RunDir(directory)
    m = rd.manifest()
    where = repr(str(rd.path))
    try:
        cfg = ModelConfig.from_dict(m.model_config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {where} holds an invalid model config: {exc}") from None
    if expect_config is not None and expect_config != cfg:
        diff = {k: (v, getattr(cfg, k)) for k, v in expect_config.to_dict().items() if cfg.to_dict()[k] != v}
        raise CheckpointError(
            f"checkpoint {where} does not match the requested model config: {diff} (asked, found)"
        )
    model = CVFPModel(cfg)
    model.load_state_dict(_fitting(rd.read_tensors("model"), model.state_dict(), where))
    model.eval()
    opt = rd.read_tensors("optimizer") if with_optimizer and rd.lists("optimizer") else None
    ext = {name: rd.read_tensors(name) for name in extras}
    return Checkpoint(model=model, manifest=m, path=rd.path, optimizer_tensors=opt, extras=ext or None)


def _fitting(
    tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: str
) -> dict[str, torch.Tensor]:
    missing = sorted(set(expected) - set(tensors))
    unknown = sorted(set(tensors) - set(expected))
    if missing or unknown:
        raise CheckpointError(
            f"checkpoint {where} does not fit the model: missing {missing[:5]}, unknown {unknown[:5]}"
        )
    for k, v in expected.items():
        if tensors[k].shape != v.shape:
            raise CheckpointError(
                f"checkpoint {where}: tensor {k!r} has shape {tuple(tensors[k].shape)}, the config needs {tuple(v.shape)}"
            )
        if not bool(torch.isfinite(tensors[k]).all()):
            raise CheckpointError(f"checkpoint {where}: tensor {k!r} holds NaN or inf values")
    return tensors


def load_model(directory: str | Path | RunDir) -> CVFPModel:
    """The verified model of a checkpoint directory, in eval mode."""
    return load_checkpoint(directory).model


# --- optimizer and generator state <-> flat tensors (no pickle) ----------------------------------


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
    try:
        for name, t in tensors.items():
            if name.startswith("state."):
                _, pid, key = name.split(".", 2)
                state.setdefault(int(pid), {})[key] = t
        fixed = [
            {**g, "betas": tuple(g["betas"])} if isinstance(g.get("betas"), list) else dict(g) for g in groups
        ]
        optimizer.load_state_dict({"state": state, "param_groups": fixed})
    except (ValueError, KeyError, RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"optimizer state does not fit: {exc}") from None


def training_state(
    optimizer: torch.optim.Optimizer, generators: list[torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Optimizer tensors plus the generator states (``rng.generator``, ``rng.generator.R`` for rank R > 0)."""
    tensors, groups = optimizer_to_tensors(optimizer)
    for r, st in enumerate(generators):
        tensors["rng.generator" if r == 0 else f"rng.generator.{r}"] = st
    return tensors, groups


def restore_training_state(
    ck: Checkpoint, optimizer: torch.optim.Optimizer, generator: torch.Generator, rank: int = 0
) -> None:
    """Load the optimizer and ``rank``'s generator state saved by :func:`training_state` (verified file)."""
    tensors = ck.optimizer_tensors or {}
    key = "rng.generator" if rank == 0 else f"rng.generator.{rank}"
    if key not in tensors:
        raise CheckpointError(f"checkpoint {str(ck.path)!r} has no optimizer/RNG state to resume from")
    groups = ck.state.get("optimizer_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise CheckpointError(
            f"checkpoint {str(ck.path)!r}: state.optimizer_groups must be a list of objects"
        )
    optimizer_from_tensors(optimizer, tensors, groups)
    try:
        generator.set_state(tensors[key])
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {str(ck.path)!r}: the generator state does not fit: {exc}"
        ) from None
