"""The Phase 1 cache: eval-mode fixed-point contexts of the training tokens, tagged with their checkpoint.

File ``cache.safetensors`` (no pickle) holds::

    contexts  [N, C] float32   fixed-point context of every token of every sample, in order
    token_ids [N]    int64
    offsets   [S+1]  int64     sample s spans rows offsets[s]:offsets[s+1]
    converged [N]    bool      the solver's verdict per token
    iterations[N]    int64

and metadata ``checkpoint`` (the checkpoint tag), ``context_mode``, ``solver`` (JSON SolverConfig).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..config import SolverConfig
from ..model import CVFPModel
from ..runs.jsonio import atomic_write_bytes
from ..solve import solve

CACHE_FILE = "cache.safetensors"


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


def save_cache(path: str | Path, cache: Phase1Cache) -> str:
    """Write atomically; return the file's sha256."""
    tensors = {
        "contexts": cache.contexts.contiguous(),
        "token_ids": cache.token_ids.contiguous(),
        "offsets": cache.offsets.contiguous(),
        "converged": cache.converged.contiguous(),
        "iterations": cache.iterations.contiguous(),
    }
    meta = {
        "checkpoint": cache.checkpoint,
        "context_mode": cache.context_mode,
        "solver": json.dumps(cache.solver),
    }
    data = save(tensors, metadata=meta)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def load_cache(path: str | Path, *, expect_checkpoint: str | None = None) -> Phase1Cache:
    """Read a cache file; with ``expect_checkpoint``, refuse one made from other weights."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Phase 1 cache {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            t = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"cannot read Phase 1 cache {str(path)!r}: {exc}") from None
    need = {"contexts", "token_ids", "offsets", "converged", "iterations"}
    if need - set(t) or "checkpoint" not in meta:
        raise ValueError(f"{str(path)!r} is not a Phase 1 cache (missing {sorted(need - set(t))})")
    if expect_checkpoint is not None and meta["checkpoint"] != expect_checkpoint:
        raise ValueError(
            f"Phase 1 cache {str(path)!r} was made from checkpoint {meta['checkpoint']}, not {expect_checkpoint}"
        )
    return Phase1Cache(
        contexts=t["contexts"],
        token_ids=t["token_ids"],
        offsets=t["offsets"],
        converged=t["converged"],
        iterations=t["iterations"],
        checkpoint=meta["checkpoint"],
        context_mode=meta.get("context_mode", "reset"),
        solver=json.loads(meta.get("solver", "{}")),
    )
