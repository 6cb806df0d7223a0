"""What the recipe benchmark measures of one Phase 1 model on held-out conversations.

A *subject* is anything with ``inputs(ids [n], previous [n, C]) -> u [n, E]``, ``step(u, c)`` and
``config``: :class:`Plain` wraps a :class:`~newllm.model.CVFPModel` (``u = embed(ids)``, the history
ignored), :class:`~newllm.recipes.inject.InjectedModel` uses it. Every solve goes through
:func:`newllm.solvers.iterate` (the stop rule of :mod:`newllm.stop`), eval mode, no grad.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .. import contraction, diagnostics
from ..config import SolverConfig
from ..model import CVFPModel
from ..solvers import iterate
from .inject import pad

#: The issue's convergence rule: rel < 1e-4 within 10 iterations, eval mode.
RULE = SolverConfig(metric="rel", threshold=1e-4, max_iterations=10, divergence_factor=None)
#: The fixed points measured for σ_max, rank, probe and Phase 2: the same rule with 30 iterations.
FIXED = SolverConfig(metric="rel", threshold=1e-4, max_iterations=30, divergence_factor=None)


class Plain:
    """A CVFPModel as a subject: ``inputs`` is the token embedding (no history input)."""

    def __init__(self, model: CVFPModel):
        self.base = model
        self.config = model.config

    def inputs(self, token_ids: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return self.base.embed(token_ids)

    def step(self, inputs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.base.step(inputs, context)

    def eval(self) -> Plain:
        self.base.eval()
        return self


@dataclass
class Solved:
    """Per-token results of a solve over conversations, flattened in conversation order: ``contexts
    [N, C]``, ``converged [N]`` bool, ``iterations [N]``, ``residual [N]`` (l2 of the last step)."""

    contexts: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor


def solve_rows(subject, u: torch.Tensor, c0: torch.Tensor, solver: SolverConfig):
    """``c = f(c; u_i)`` for every row of ``u [n, E]`` from ``c0 [n, C]`` (a FixedPointResult)."""

    def fn(z: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        return subject.step(u if rows is None else u[rows], z)

    with torch.no_grad():
        return iterate(fn, c0, solver)


def solve_sequences(
    subject, samples: Sequence[Sequence[int]], solver: SolverConfig, *, carry: bool
) -> Solved:
    """Every token of ``samples``, position by position (conversations batched). ``carry``: token
    ``t`` starts from token ``t-1``'s fixed point and gets it as its history input (when the subject
    has one); else it starts from zeros with a zero history: the reset mode."""
    if not carry:  # every token from zeros, zero history: one batch
        flat = torch.tensor([t for s in samples for t in s], dtype=torch.long)
        with torch.no_grad():
            zeros = torch.zeros(flat.numel(), subject.config.context_dim)
            r = solve_rows(subject, subject.inputs(flat, zeros), zeros, solver)
        return Solved(r.context, r.converged, r.iterations, r.residual["l2"].double())
    ids, valid = pad(samples)
    b, t_len = ids.shape
    dim = subject.config.context_dim
    out = torch.zeros(b, t_len, dim)
    conv = torch.zeros(b, t_len, dtype=torch.bool)
    iters = torch.zeros(b, t_len, dtype=torch.long)
    res = torch.zeros(b, t_len, dtype=torch.float64)
    prev = torch.zeros(b, dim)
    with torch.no_grad():
        for t in range(t_len):
            rows = valid[:, t].nonzero().squeeze(1)
            p = prev[rows]
            r = solve_rows(subject, subject.inputs(ids[rows, t], p), p.clone(), solver)
            out[rows, t], conv[rows, t], iters[rows, t] = r.context, r.converged, r.iterations
            res[rows, t] = r.residual["l2"].double()
            prev[rows] = r.context
    return Solved(out[valid], conv[valid], iters[valid], res[valid])


def distinct(samples: Sequence[Sequence[int]]) -> torch.Tensor:
    """The sorted distinct token ids of ``samples``."""
    return torch.unique(torch.tensor([t for s in samples for t in s], dtype=torch.long))


def point_map(subject, u: torch.Tensor):
    """``z [n, *P, C] -> f(z; u_i)``: the :data:`newllm.contraction.PointMap` of the rows ``u [n, E]``."""

    def fn(z: torch.Tensor) -> torch.Tensor:
        return subject.step(u.to(z.dtype).reshape(u.shape[0], *([1] * (z.dim() - 2)), u.shape[1]), z)

    return fn


def contraction_at(subject, ids: torch.Tensor, contexts: torch.Tensor, *, exact_sample: int, seed: int):
    """σ_max (Lanczos lower bound, every row; exact on ``exact_sample`` evenly spaced rows) and ρ
    (exact, same rows) of the reset-mode map at ``contexts [n, C]`` of tokens ``ids [n]``."""
    with torch.no_grad():
        u = subject.inputs(ids, torch.zeros_like(contexts))
    fn = point_map(subject, u)
    est = contraction.sigma_max(fn, contexts, iterations=20, seed=seed)
    pick = torch.linspace(0, ids.numel() - 1, min(exact_sample, ids.numel())).round().long().unique()
    ex = contraction.exact(point_map(subject, u[pick]), contexts[pick])
    return {
        "sigma_max_estimate_max": est.max,
        "sigma_max_estimate_median": est.median,
        "sigma_max_estimate_below_1": est.fraction_below(1.0),
        "sigma_max_exact_max": ex["sigma_max"].max,
        "sigma_max_exact_below_1": ex["sigma_max"].fraction_below(1.0),
        "rho_exact_max": ex["spectral_radius"].max,
        "rho_exact_median": ex["spectral_radius"].median,
        "exact_sample": int(pick.numel()),
    }


def probe_accuracy(contexts: torch.Tensor, labels: torch.Tensor, *, steps: int = 300, seed: int = 0) -> float:
    """Fraction of rows of ``contexts [n, C]`` whose label a linear softmax probe (standardised
    inputs, full-batch Adam lr 0.05, ``steps`` steps, N(0, 0.01²) init from ``seed``) recovers when
    fitted on these same rows: can the token be read back linearly from its fixed point?"""
    classes, y = torch.unique(labels, return_inverse=True)
    x = contexts.double()
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(x.shape[1], classes.numel(), generator=gen, dtype=torch.float64) * 0.01).requires_grad_()
    b = torch.zeros(classes.numel(), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(x @ w + b, y).backward()
        opt.step()
    with torch.no_grad():
        return float(((x @ w + b).argmax(1) == y).double().mean())


def information(contexts: torch.Tensor, ids: torch.Tensor, *, seed: int) -> dict[str, float]:
    """Effective rank, max/mean pairwise cosine (different tokens) and probe accuracy of the
    per-token contexts ``[n, C]`` of distinct tokens ``ids [n]``."""
    rep = diagnostics.collapse_report(contexts, ids, max_tokens=None)
    return {
        "tokens": int(ids.numel()),
        "effective_rank": rep["effective_rank"],
        "effective_rank_fraction": rep["effective_rank"] / contexts.shape[1],
        "max_cosine": rep["max_cosine"],
        "mean_cosine": rep["mean_cosine"],
        "probe_accuracy": probe_accuracy(contexts, ids, seed=seed),
    }


def carry_vs_reset(reset: Solved, carry: Solved, k: float) -> dict[str, float]:
    """Distance ``||c_carry - c_reset||`` (l2) per token against the contraction bound
    ``(r_carry + r_reset) / (1 - k)`` (``r``: each solve's last l2 residual, ``k``: a Lipschitz
    constant of the map; no bound, inf, when ``k >= 1``)."""
    dist = torch.linalg.vector_norm((carry.contexts - reset.contexts).double(), dim=-1)
    bound = (carry.residual + reset.residual) / (1.0 - k) if k < 1.0 else torch.full_like(dist, torch.inf)
    return {
        "distance_max": float(dist.max()),
        "distance_median": float(dist.median()),
        "bound_max": float(bound.max()),
        "within_bound": float((dist <= bound).double().mean()),
        "k": k,
    }
