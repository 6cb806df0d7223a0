"""The gradient norm of every optimizer step of a training run, recorded from outside the trainer.

:class:`GradNorms` puts a post-accumulate-grad hook on each parameter: a backward pass adds each
gradient's squared norm to the current step; a parameter receiving its second gradient starts the
next step. The norms are the total l2 norm over all parameters *before* any clipping (the hooks run
inside ``backward``, before ``clip_grad_norm_``), as ``clip_grad_norm_`` computes it.
"""

from __future__ import annotations

import math

import torch


class GradNorms:
    """``with GradNorms(model) as g: train(...)``; then ``g.norms`` (one per backward pass)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.norms: list[float] = []
        self._step: dict[int, float] = {}
        self._handles: list = []

    def _hook(self, p: torch.Tensor) -> None:
        if id(p) in self._step:
            self._flush()
        if p.grad is not None:
            self._step[id(p)] = float(p.grad.detach().double().pow(2).sum())

    def _flush(self) -> None:
        if self._step:
            self.norms.append(math.sqrt(sum(self._step.values())))
            self._step = {}

    def __enter__(self) -> GradNorms:
        for p in self.model.parameters():
            if p.requires_grad:
                self._handles.append(p.register_post_accumulate_grad_hook(self._hook))
        return self

    def __exit__(self, *exc) -> None:
        self._flush()
        for h in self._handles:
            h.remove()
        self._handles = []

    def summary(self, clip: float | None) -> dict[str, float | int]:
        """``grad_norm_max``, ``grad_norm_mean`` and the steps whose norm exceeds ``clip`` (clipped)."""
        n = len(self.norms)
        out: dict[str, float | int] = {
            "grad_norm_max": max(self.norms, default=math.nan),
            "grad_norm_mean": sum(self.norms) / n if n else math.nan,
            "grad_steps": n,
        }
        if clip is not None:
            out["grad_steps_above_clip"] = sum(x > clip for x in self.norms)
        return out
