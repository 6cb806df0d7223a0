"""The Phase 1 cache: eval-mode fixed-point contexts of the training tokens, tagged with their checkpoint.

File ``cache.safetensors`` (no pickle) holds::

    contexts  [N, C] float32   fixed-point context of every token of every sample, in order
    token_ids [N]    int64
    offsets   [S+1]  int64     sample s spans rows offsets[s]:offsets[s+1]
    converged [N]    bool      the solver's verdict per token
    iterations[N]    int64

and one metadata key ``newllm-cache``: a JSON object with ``checkpoint`` (the tag of the weights),
``context_mode`` and ``solver`` (a SolverConfig), keys sorted, so that the same cache is the same bytes.

In a run directory the cache is listed in the manifest (file kind ``cache``); :func:`read_cache` is the
verified read: size and SHA-256 from the manifest, then the structure, the weights' tag and the token ids
against the run's ``samples_sha256``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from ..config import SolverConfig
from ..model import CVFPModel
from ..runs.manifest import CheckpointError
from ..runs.rundir import RunDir
from ..solve import solve

CACHE_FILE = "cache.safetensors"
META_KEY = "newllm-cache"
#: name -> (dtype, dimensions) of the cache's tensors.
TENSORS = {
    "contexts": (torch.float32, 2),
    "token_ids": (torch.long, 1),
    "offsets": (torch.long, 1),
    "converged": (torch.bool, 1),
    "iterations": (torch.long, 1),
}


def samples_digest(samples: Sequence[Sequence[int]]) -> str:
    """SHA-256 (hex) of the token ids of ``samples``, in order: the run's ``samples_sha256``."""
    return hashlib.sha256(json.dumps([list(map(int, s)) for s in samples]).encode()).hexdigest()


@dataclass
class Phase1Cache:
    contexts: torch.Tensor
    token_ids: torch.Tensor
    offsets: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor
    checkpoint: str
    context_mode: str
    solver: dict

    @property
    def num_samples(self) -> int:
        return self.offsets.numel() - 1

    def sample(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(token_ids [T], contexts [T, C])`` of sample ``s``."""
        a, b = int(self.offsets[s]), int(self.offsets[s + 1])
        return self.token_ids[a:b], self.contexts[a:b]


def build_cache(
    model: CVFPModel, samples: Sequence[Sequence[int]], solver: SolverConfig, *, checkpoint: str
) -> Phase1Cache:
    """Solve every sample's tokens in eval mode (reset: one batch; carry: per sample, in order)."""
    lengths = [len(s) for s in samples]
    if not samples or min(lengths) == 0:
        raise ValueError("build_cache needs at least one non-empty sample")
    offsets = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.long)
    flat = torch.tensor([t for s in samples for t in s], dtype=torch.long)
    if solver.context_mode == "reset":
        r = solve(model, flat, solver)
        ctx, conv, its = r.context, r.converged, r.iterations
    else:
        parts = [solve(model, torch.tensor(list(s)), solver) for s in samples]
        ctx = torch.cat([p.context for p in parts])
        conv = torch.cat([p.converged for p in parts])
        its = torch.cat([p.iterations for p in parts])
    return Phase1Cache(
        contexts=ctx.float().cpu(),
        token_ids=flat,
        offsets=offsets,
        converged=conv.cpu(),
        iterations=its.cpu(),
        checkpoint=checkpoint,
        context_mode=solver.context_mode,
        solver=solver.to_dict(),
    )


def cache_bytes(cache: Phase1Cache) -> bytes:
    """The cache as safetensors bytes (reproducible: one metadata key with sorted JSON)."""
    tensors = {k: getattr(cache, k).contiguous() for k in TENSORS}
    meta = {"checkpoint": cache.checkpoint, "context_mode": cache.context_mode, "solver": cache.solver}
    return save(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def parse_cache(data: bytes, where: str, *, vocab_size: int | None = None) -> Phase1Cache:
    """A cache from its bytes, its structure checked; ValueError naming ``where`` (the file) otherwise."""
    bad = f"Phase 1 cache {where!r} is damaged or not a cache"
    try:
        t = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read Phase 1 cache {where!r}: {exc}") from None
    try:
        meta = json.loads(_metadata(data).get(META_KEY, "null"))
    except ValueError as exc:
        raise CheckpointError(f"{bad}: its {META_KEY} metadata is not valid JSON ({exc})") from None
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("checkpoint"), str)
        or not isinstance(meta.get("solver"), dict)
    ):
        raise CheckpointError(f"{bad}: no {META_KEY} metadata with checkpoint and solver")
    if meta.get("context_mode") not in ("reset", "carry"):
        raise CheckpointError(f"{bad}: context_mode must be reset or carry, got {meta.get('context_mode')!r}")
    _check_tensors(t, bad, vocab_size)
    return Phase1Cache(
        **{k: t[k] for k in TENSORS},
        checkpoint=meta["checkpoint"],
        context_mode=meta["context_mode"],
        solver=meta["solver"],
    )


def _metadata(data: bytes) -> dict[str, Any]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]).get("__metadata__") or {}


def _check_tensors(t: dict[str, torch.Tensor], bad: str, vocab_size: int | None) -> None:
    missing = sorted(set(TENSORS) - set(t))
    if missing:
        raise CheckpointError(f"{bad}: missing {missing}")
    for k, (dtype, dims) in TENSORS.items():
        if t[k].dtype != dtype or t[k].dim() != dims:
            raise CheckpointError(f"{bad}: {k} must be {dims}-D {dtype}, got {t[k].dim()}-D {t[k].dtype}")
    n, off = t["token_ids"].numel(), t["offsets"]
    if any(t[k].shape[0] != n for k in ("contexts", "converged", "iterations")):
        raise CheckpointError(f"{bad}: contexts, converged and iterations must have {n} rows (one per token)")
    if off.numel() < 2 or int(off[0]) != 0 or int(off[-1]) != n or not bool((off[1:] > off[:-1]).all()):
        raise CheckpointError(f"{bad}: offsets must rise strictly from 0 to {n}")
    if n and (
        int(t["token_ids"].min()) < 0 or (vocab_size is not None and int(t["token_ids"].max()) >= vocab_size)
    ):
        raise CheckpointError(f"{bad}: token ids outside [0, {vocab_size})")


def load_cache(path: str | Path, *, expect_checkpoint: str | None = None) -> Phase1Cache:
    """Read a cache file by itself (structure checked, no checksum: use :func:`read_cache` for a run's)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read Phase 1 cache {str(path)!r}: {exc.strerror or exc}") from None
    cache = parse_cache(data, str(path))
    _check_tag(cache, str(path), expect_checkpoint)
    return cache


def read_cache(rd: RunDir, *, expect_checkpoint: str, vocab_size: int | None = None) -> Phase1Cache:
    """The verified cache of a run directory: listed and unchanged (SHA-256), made from the weights
    ``expect_checkpoint`` names, and holding exactly the run's samples (``state.samples_sha256``)."""
    rd.refuse_legacy("its Phase 1 cache")
    hint = " (the run stopped before it listed its cache: finish it with newllm train --resume)"
    rd.refuse_unlisted("cache", hint)
    where = str(rd.path / rd.entry("cache").name)
    cache = parse_cache(rd.read_bytes("cache"), where, vocab_size=vocab_size)
    _check_tag(cache, where, expect_checkpoint)
    saved = rd.manifest().state.get("samples_sha256")
    if not isinstance(saved, str):
        raise CheckpointError(f"{str(rd.manifest_path)!r} holds no samples_sha256 to check the cache against")
    samples = [cache.sample(s)[0].tolist() for s in range(cache.num_samples)]
    if samples_digest(samples) != saved:
        raise CheckpointError(
            f"Phase 1 cache {where!r}: its token ids are not the run's samples (samples_sha256)"
        )
    return cache


def _check_tag(cache: Phase1Cache, where: str, expect: str | None) -> None:
    if expect is not None and cache.checkpoint != expect:
        raise CheckpointError(
            f"Phase 1 cache {where!r} was made from checkpoint {cache.checkpoint}, not {expect}"
        )
