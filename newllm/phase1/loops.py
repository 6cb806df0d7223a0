"""The two Phase 1 training loops. Both call :func:`train_group`, which calls ``model.step`` and
``metrics.mse``: the spec loop runs it on one token at a time, the batched loop on many.

One iteration over a group of active tokens (contexts ``c [n, C]``)::

    zero_grad; new = model.step(embed(tok), c.detach()); loss_t = metrics.mse(new, c)   # [n]
    loss = mean(loss_t) + recipe_loss (the recipe's penalties); backward; clip; optimizer.step()
    (then the spectral cap, when the recipe has one)
    c = new.detach(); token t stops when the stop rule (newllm.stop: metric mse, the threshold, warmup)
    says it converged

Dropout (train mode): ``dropout_mode="fresh"`` draws new masks at every iteration (the seeds');
``"fixed"`` draws one mask per token when its group starts and holds it for all its iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .. import metrics
from ..model import CVFPModel
from ..runs.distributed import Dist
from ..stop import Status, StopRule, StopState, stop
from .config import Phase1Config
from .penalties import (
    covariance_loss,
    hutchinson_jacobian,
    project_spectral,
    sigma_hinge,
    variance_loss,
)


class Phase1Divergence(ValueError):
    """A non-finite training loss: names the epoch, sample, position, token and iteration."""


@dataclass
class GroupOutcome:
    """Per-token results of one group, each ``[n]``, plus the optimizer steps spent."""

    iterations: torch.Tensor
    converged: torch.Tensor
    final_loss: torch.Tensor
    optimizer_steps: int
    #: ``[n, C]`` each token's last training-mode context (for the collapse diagnostics).
    contexts: torch.Tensor | None = None


class StepModule(torch.nn.Module):
    """``(ids [n], c [n, C]) -> model.step(model.embed(ids), c)``: a ``forward`` for DistributedDataParallel.

    It only calls the model's own ``embed`` and ``step``: the update arithmetic stays in one place.
    """

    def __init__(self, model: CVFPModel):
        super().__init__()
        self.model = model

    def forward(
        self,
        ids: torch.Tensor,
        c: torch.Tensor,
        generator: torch.Generator | None = None,
        masks: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        return self.model.step(self.model.embed(ids), c, generator=generator, masks=masks)


def train_group(
    model: CVFPModel,
    optimizer: torch.optim.Optimizer,
    token_ids: torch.Tensor,
    config: Phase1Config,
    generator: torch.Generator,
    *,
    where: Callable[[int, int], str] | None = None,
    dist: Dist | None = None,
    stepper: torch.nn.Module | None = None,
) -> GroupOutcome:
    """Train on ``token_ids [n]`` (all from zero contexts) until each converges or ``max_iterations``.

    ``where(row, k)`` describes a token for the non-finite error message. Distributed: every rank
    passes its shard and a DDP-wrapped :class:`StepModule` as ``stepper``; the loss is scaled so
    that the all-reduced gradient equals the gradient of the mean over all ranks' active tokens,
    and ranks keep stepping together until no rank has an active token.
    """
    dist = dist or Dist.single()
    n = token_ids.numel()
    ids = token_ids.to(dev := model.token_embedding.weight.device)
    c = model.initial_context((n,))
    iters = torch.full((n,), config.max_iterations, dtype=torch.long)
    conv = torch.zeros(n, dtype=torch.bool)
    final = torch.full((n,), math.nan, dtype=torch.float64)
    active = torch.arange(n)
    rule = StopRule(metric="mse", threshold=config.threshold, warmup=config.warmup)
    state = StopState.start(n, dtype=torch.float64, device="cpu")
    steps = 0
    params = [p for p in model.parameters() if p.requires_grad]
    fixed = config.dropout_mode == "fixed" and model.training  # one mask per token for all its iterations
    masks = model.dropout_masks((n,), generator=generator) if fixed and n > 0 else None
    for k in range(1, config.max_iterations + 1):
        n_global = dist.sum_int(active.numel())
        if n_global == 0:
            break
        idle = active.numel() == 0  # this rank waits for the others: a zero-weight pass keeps DDP in step
        rows = active.to(dev)
        optimizer.zero_grad(set_to_none=True)
        c_in = model.initial_context((1,)) if idle else c[rows].detach()
        tok = torch.zeros(1, dtype=torch.long, device=dev) if idle else ids[rows]
        if needs_input_grad(config):
            c_in.requires_grad_(True)
        held = None if masks is None or idle else [m[rows] for m in masks]
        if stepper is None:
            new = model.step(model.embed(tok), c_in, generator=generator, masks=held)
        else:
            new = stepper(tok, c_in, generator, held)
        tok_loss = metrics.mse(new, c_in.detach())  # [m]: THE fixed-point loss, from the registry
        if dist.enabled:
            loss = tok_loss.sum() * (0.0 if idle else dist.world_size / n_global)
        else:
            loss = tok_loss.mean()
        if not idle:
            loss = loss + recipe_loss(config, new, c_in, generator)
        detached = tok_loss.detach().to("cpu", torch.float64)
        _check_finite(loss, detached, None if idle else where, active, k)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        if config.spectral_scale is not None:
            project_spectral(model, config.spectral_scale)
        steps += 1
        if idle:
            continue
        with torch.no_grad():
            c[rows] = new.detach()
        final[active] = detached
        status, part = stop(k, detached, detached, torch.ones_like(conv[active]), state.rows(active), rule)
        state.put(active, part)
        done = status == Status.CONVERGED
        if bool(done.any()):
            fin = active[done]
            conv[fin] = True
            iters[fin] = k
            active = active[~done]
    return GroupOutcome(
        iterations=iters, converged=conv, final_loss=final, optimizer_steps=steps, contexts=c.detach().cpu()
    )


def needs_input_grad(config: Phase1Config) -> bool:
    """Whether a penalty differentiates through ``c_in`` (the Jacobian terms)."""
    return config.jacobian_weight > 0 or config.sigma_weight > 0


def recipe_loss(
    config: Phase1Config, new: torch.Tensor, c_in: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The weighted extra terms of ``config`` (:mod:`.penalties`) for one group's ``new [n, C]``: a scalar.

    Random draws, in this order and only for terms with a positive weight: the Hutchinson probe,
    the σ-hinge's power-iteration start (both from ``generator``).
    """
    total = new.new_zeros(())
    if config.jacobian_weight > 0:
        total = total + config.jacobian_weight * hutchinson_jacobian(new, c_in, generator).mean()
    if config.sigma_weight > 0:
        hinge = sigma_hinge(new, c_in, generator, config.sigma_margin, config.sigma_iterations)
        total = total + config.sigma_weight * hinge.mean()
    if config.variance_weight > 0:
        total = total + config.variance_weight * variance_loss(new)
    if config.covariance_weight > 0:
        total = total + config.covariance_weight * covariance_loss(new)
    return total


def _check_finite(
    loss: torch.Tensor,
    tok_loss: torch.Tensor,
    where: Callable[[int, int], str] | None,
    active: torch.Tensor,
    k: int,
) -> None:
    """Raise :class:`Phase1Divergence` naming the first non-finite token (``where(row, k)``)."""
    if not bool(torch.isfinite(loss.detach())) or not bool(torch.isfinite(tok_loss).all()):
        bad = int((~torch.isfinite(tok_loss)).nonzero()[0]) if not bool(torch.isfinite(tok_loss).all()) else 0
        desc = where(int(active[bad]), k) if where else f"row {bad}, iteration {k}"
        raise Phase1Divergence(f"non-finite Phase 1 loss at {desc}")
