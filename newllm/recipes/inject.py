"""The input-injection variant: the previous token's fixed point is an *input* of the update, not its start.

For token ``t`` with embedding ``e_t`` and the previous token's fixed point ``p = c*_{t-1}`` (zeros at
``t = 0``)::

    u_t  = e_t + H p                     # H: Linear(C, E, no bias), starts at zero
    c*_t = f(c*_t ; u_t)                  # f = CVFPModel.step with u_t in place of the embedding

The map iterated in ``c`` is the plain model's, so a contraction in ``c`` stays one; the fixed point
depends on the history through ``u_t``, so carry-mode contexts can differ from reset-mode ones.

Phase 1 (:func:`train_injected`) iterates every position of a batch at once (Jacobi over the
sequence: position ``t`` reads ``p`` from position ``t-1``'s current iterate, detached), with the
fixed-point loss and the recipe's terms of :func:`newllm.phase1.recipe_loss`; an epoch ends when the
stop rule (mse, the recipe's threshold) says every position converged at the same iteration, or
after ``max_iterations``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import metrics
from ..model import CVFPModel
from ..phase1 import Phase1Config, make_optimizer, recipe_loss
from ..phase1.loops import needs_input_grad
from ..phase1.penalties import project_spectral
from ..stop import Status, StopRule, StopState, stop


class InjectedModel(nn.Module):
    """A :class:`CVFPModel` plus the history projection ``H: [.., C] -> [.., E]`` (zero at start)."""

    def __init__(self, base: CVFPModel):
        super().__init__()
        self.base = base
        self.history = nn.Linear(base.config.context_dim, base.config.embed_dim, bias=False)
        nn.init.zeros_(self.history.weight)

    @property
    def config(self):
        return self.base.config

    def inputs(self, token_ids: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """``u = embed(ids) + H previous``: ``[...], [..., C] -> [..., E]``."""
        return self.base.embed(token_ids) + self.history(previous)

    def step(self, inputs: torch.Tensor, context: torch.Tensor, *, generator=None) -> torch.Tensor:
        """``f(c; u)``: the plain model's update with ``inputs`` in place of the token embedding."""
        return self.base.step(inputs, context, generator=generator)


def shift(contexts: torch.Tensor) -> torch.Tensor:
    """``[B, T, C]`` -> the previous position's context at every position (zeros at ``t = 0``)."""
    return torch.cat([torch.zeros_like(contexts[:, :1]), contexts[:, :-1]], dim=1)


def pad(samples: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids [B, T] padded with 0, valid [B, T] bool)`` of token-id lists."""
    t_max = max(len(s) for s in samples)
    ids = torch.zeros(len(samples), t_max, dtype=torch.long)
    valid = torch.zeros(len(samples), t_max, dtype=torch.bool)
    for b, s in enumerate(samples):
        ids[b, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        valid[b, : len(s)] = True
    return ids, valid


def train_injected(
    model: InjectedModel, samples: Sequence[Sequence[int]], config: Phase1Config
) -> list[dict[str, float]]:
    """Phase 1 of the variant on ``samples`` (one batch), in place; per-epoch ``{"epoch", "iterations",
    "mean_loss", "converged"}``. Adam (:func:`~newllm.phase1.make_optimizer`), clipping and the
    spectral cap as in :func:`~newllm.phase1.train_phase1`; dropout/probes from ``config.seed``."""
    ids, valid = pad(samples)
    gen = torch.Generator().manual_seed(config.seed)
    opt = make_optimizer(model, config)  # type: ignore[arg-type]
    rule = StopRule(metric="mse", threshold=config.threshold, warmup=config.warmup)
    if config.spectral_scale is not None:
        project_spectral(model.base, config.spectral_scale)
    history = []
    model.train()
    for epoch in range(1, config.epochs + 1):
        c = torch.zeros(*ids.shape, model.config.context_dim)
        k, status = 0, torch.zeros(0)
        for k in range(1, config.max_iterations + 1):
            tok_loss, new = _jacobi_step(model, opt, ids, valid, c, config, gen)
            c[valid] = new
            status, _ = stop(k, tok_loss, tok_loss, torch.ones_like(tok_loss, dtype=torch.bool),
                             StopState.start(tok_loss.numel(), dtype=torch.float64, device="cpu"), rule)  # fmt: skip
            if bool((status == Status.CONVERGED).all()):
                break
        history.append(
            {
                "epoch": epoch,
                "iterations": k,
                "mean_loss": float(tok_loss.mean()),
                "converged": float((status == Status.CONVERGED).double().mean()),
            }
        )
    model.eval()
    return history


def _jacobi_step(model, opt, ids, valid, c, config: Phase1Config, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on every valid position: ``(per-token mse [n] float64, new contexts [n, C])``."""
    opt.zero_grad(set_to_none=True)
    c_in = c[valid].detach()
    if needs_input_grad(config):
        c_in.requires_grad_(True)
    u = model.inputs(ids[valid], shift(c)[valid].detach())
    new = model.step(u, c_in, generator=gen)
    tok_loss = metrics.mse(new, c_in.detach())
    loss = tok_loss.mean() + recipe_loss(config, new, c_in, gen)
    if not bool(torch.isfinite(loss.detach())):
        raise ValueError("non-finite Phase 1 loss in the input-injection variant")
    loss.backward()
    if config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    opt.step()
    if config.spectral_scale is not None:
        project_spectral(model.base, config.spectral_scale)
    return tok_loss.detach().double(), new.detach()
