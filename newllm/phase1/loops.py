"""The two Phase 1 training loops. Both call :func:`train_group`, which calls ``model.step`` and
``metrics.mse``: the spec loop runs it on one token at a time, the batched loop on many.

One iteration over a group of active tokens (contexts ``c [n, C]``)::

    zero_grad; new = model.step(embed(tok), c.detach()); loss_t = metrics.mse(new, c)   # [n]
    loss = mean(loss_t) (+ jacobian_weight * Hutchinson ||J||_F^2 / D); backward; clip; optimizer.step()
    c = new.detach(); token t converged (and stops) when k > warmup and loss_t < tolerance
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .. import metrics
from ..model import CVFPModel
from .config import Phase1Config


class Phase1Divergence(ValueError):
    """A non-finite training loss: names the epoch, sample, position, token and iteration."""


@dataclass
class GroupOutcome:
    """Per-token results of one group, each ``[n]``, plus the optimizer steps spent."""

    iterations: torch.Tensor
    converged: torch.Tensor
    final_loss: torch.Tensor
    optimizer_steps: int


def train_group(
    model: CVFPModel,
    optimizer: torch.optim.Optimizer,
    token_ids: torch.Tensor,
    config: Phase1Config,
    generator: torch.Generator,
    *,
    where: Callable[[int, int], str] | None = None,
) -> GroupOutcome:
    """Train on ``token_ids [n]`` (all from zero contexts) until each converges or ``max_iterations``.

    ``where(row, k)`` describes a token for the non-finite error message.
    """
    n = token_ids.numel()
    dev = model.token_embedding.weight.device
    ids = token_ids.to(dev)
    c = model.initial_context((n,))
    iters = torch.full((n,), config.max_iterations, dtype=torch.long)
    conv = torch.zeros(n, dtype=torch.bool)
    final = torch.full((n,), math.nan, dtype=torch.float64)
    active = torch.arange(n)
    steps = 0
    params = [p for p in model.parameters() if p.requires_grad]
    for k in range(1, config.max_iterations + 1):
        rows = active.to(dev)
        optimizer.zero_grad(set_to_none=True)
        c_in = c[rows].detach()
        if config.jacobian_weight > 0:
            c_in.requires_grad_(True)
        new = model.step(model.embed(ids[rows]), c_in, generator=generator)
        tok_loss = metrics.mse(new, c_in.detach())  # [m]: THE fixed-point loss, from the registry
        loss = tok_loss.mean()
        if config.jacobian_weight > 0:
            loss = loss + config.jacobian_weight * hutchinson_jacobian(new, c_in, generator).mean()
        detached = tok_loss.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(loss.detach())) or not bool(torch.isfinite(detached).all()):
            bad = (
                int((~torch.isfinite(detached)).nonzero()[0])
                if not bool(torch.isfinite(detached).all())
                else 0
            )
            desc = where(int(active[bad]), k) if where else f"row {int(active[bad])}, iteration {k}"
            raise Phase1Divergence(f"non-finite Phase 1 loss at {desc}")
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        steps += 1
        with torch.no_grad():
            c[rows] = new.detach()
        final[active] = detached
        done = (
            metrics.below(detached, config.tolerance) if k > config.warmup else torch.zeros_like(conv[active])
        )
        if bool(done.any()):
            fin = active[done]
            conv[fin] = True
            iters[fin] = k
            active = active[~done]
        if active.numel() == 0:
            break
    return GroupOutcome(iterations=iters, converged=conv, final_loss=final, optimizer_steps=steps)


def hutchinson_jacobian(new: torch.Tensor, c_in: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-token unbiased estimate of ``||J||_F^2 / D`` with ``J = d new / d c_in``: ``[n]``.

    One Gaussian probe ``v``: ``E ||v^T J||^2 = ||J||_F^2``. Differentiable (create_graph).
    """
    v = torch.randn(new.shape, generator=generator, device=new.device, dtype=new.dtype)
    (vj,) = torch.autograd.grad(new, c_in, v, create_graph=True)
    return vj.pow(2).sum(-1) / new.shape[-1]
