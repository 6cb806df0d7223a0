"""Observed contraction factor ``q``: a geometric fit ``r_k ≈ C q^k`` to the tail of a solver's residual trace.

For plain iteration (Picard, damping 1) near a fixed point the l2 residual shrinks by about ρ(J)
per iteration, so the fitted ``q`` estimates ρ at the fixed point (an **estimate**: a cluster of
eigenvalues near ρ or a transient that has not died out pulls it below ρ; a non-normal J can
make the residual grow for a while). Anderson traces give Anderson's own factor, not ρ.
("rate" in newllm is the converged fraction; see docs/glossary.md.)
"""

from __future__ import annotations

import math

import torch

from ..metrics import METRICS
from ..result import FixedPointResult
from ..stop import Status, StopRule, replay
from .estimate import Estimate

#: The metrics whose residual scales like ``‖Δ‖²`` (so their factor is q²).
_SQUARED = ("mse",)


def fit_log_line(trace: torch.Tensor, *, tail: float = 0.5, min_points: int = 5, floor: float = 0.0):
    """Least-squares line ``log r_k = a + b k`` (k = 1..K) on the tail of each column of ``trace [K, N]``.

    Uses per column the last ``max(min_points, ceil(tail * n_i))`` of its ``n_i`` finite entries
    above ``floor`` (NaN marks iterations after the token stopped). Returns ``(a [N], b [N],
    points [N])``; NaN where fewer than 2 points qualify.
    """
    if trace.dim() != 2:
        raise ValueError(f"trace must be [K, N], got shape {tuple(trace.shape)}")
    if not 0 < tail <= 1:
        raise ValueError(f"tail must be in (0, 1], got {tail}")
    t = trace.to(torch.float64)
    ok = torch.isfinite(t) & (t > floor)
    count = ok.sum(0)
    want = torch.maximum(torch.ceil(tail * count).long(), torch.full_like(count, min_points))
    from_end = ok.flip(0).cumsum(0).flip(0)  # qualifying entries at or after row k
    use = ok & (from_end <= want.unsqueeze(0))
    w = use.to(torch.float64)
    k = torch.arange(1, t.shape[0] + 1, dtype=torch.float64, device=t.device).unsqueeze(1)
    y = torch.where(use, t.clamp_min(1e-300).log(), torch.zeros_like(t))
    n = w.sum(0)
    km = (w * k).sum(0) / n
    ym = (w * y).sum(0) / n
    cov = (w * (k - km) * (y - ym)).sum(0)
    var = (w * (k - km).pow(2)).sum(0)
    slope = torch.where(n >= 2, cov / var, torch.full_like(n, math.nan))
    return ym - slope * km, slope, n.long()


def observed_factor(
    result: FixedPointResult, *, metric: str = "l2", tail: float = 0.5, min_points: int = 5
) -> Estimate:
    """Per-token geometric factor ``q`` of the residual fitted on the tail of ``result.trace[metric]``.

    Needs a result solved with ``record_trace=True``. ``q`` is per iteration and in l2 units (an
    ``mse`` fit is square-rooted). Residuals at the rounding floor (``rel`` below 100 eps) are left
    out. ``details["predicted_iterations"]``: the iteration at which the fitted line in the
    solver's own metric crosses ``result.threshold`` (inf when it does not decrease; compare with
    ``result.iterations``).
    """
    if result.trace is None:
        raise ValueError("observed_factor needs the residual trace: solve with record_trace=True")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    trace = {m: v.reshape(v.shape[0], -1) for m, v in result.trace.items()}
    eps = torch.finfo(result.context.dtype).eps
    floor_mask = trace["rel"] < 100 * eps

    def fit(m: str):
        t = torch.where(floor_mask, torch.full_like(trace[m], math.nan), trace[m])
        return fit_log_line(t, tail=tail, min_points=min_points)

    _, slope, points = fit(metric)
    factor = torch.exp(slope / (2.0 if metric in _SQUARED else 1.0))
    a_own, b_own, _ = fit(result.metric)
    with torch.no_grad():
        k_star = (math.log(result.threshold) - a_own) / b_own
    k_star = torch.where(b_own < 0, torch.ceil(k_star), torch.full_like(k_star, math.inf))
    return Estimate(
        "observed_factor",
        "estimate",
        f"log-linear fit to the last {tail:.0%} of the {metric} trace",
        factor,
        {"points": points.cpu(), "predicted_iterations": k_star.cpu(), "fit_metric": metric},
    )


def predict_iterations(factor: torch.Tensor, first: torch.Tensor, threshold: float, *, power: int = 1):
    """Iterations for a residual ``first`` (at iteration 1) shrinking by ``factor**power`` per
    iteration to fall strictly below ``threshold``: the first ``k`` with ``first factor^(power (k-1)) <
    threshold``, ``2 + ⌊log(threshold / first) / (power log factor)⌋`` (inf for ``factor >= 1``, 1 when
    already below)."""
    factor = torch.as_tensor(factor, dtype=torch.float64)
    first = torch.as_tensor(first, dtype=torch.float64)
    steps = (torch.floor(torch.log(threshold / first) / (power * torch.log(factor))) + 1).clamp_min(0)
    flat = first.expand(steps.shape).reshape(1, -1)  # one recorded iteration per token
    below = (replay(flat, StopRule(threshold=threshold))[0] == Status.CONVERGED).reshape(steps.shape)
    steps = torch.where(below, torch.zeros_like(steps), steps)
    return torch.where((factor >= 1) & ~below, torch.full_like(steps, math.inf), 1 + steps)
