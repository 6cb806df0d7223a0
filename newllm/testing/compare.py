"""Comparing two solves of the same tokens that should differ only by float rounding.

The decisions compared were taken by :func:`newllm.stop.stop` in each run; nothing here decides
convergence. Per token: statuses and iteration counts must agree, except where, at the first
iteration where the runs part, both runs' residuals (in the solver's metric) lie within a relative
``band`` of the threshold -- the one place rounding may flip a decision. Tokens that converged in both
runs at the same iteration must have contexts within ``ctx_bound * max(1, |c|)`` entrywise.
"""

from __future__ import annotations

import torch

from ..result import FixedPointResult
from ..stop import Status
from .probe import labels


def relative_gap(x: float, ref: float) -> float:
    """``|x / ref - 1|`` (inf for ``ref == 0``): how far ``x`` lies from ``ref``, relatively."""
    return abs(x / ref - 1.0) if ref != 0 else float("inf")


def entry_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row of ``[N, ...]``: ``max |a - b| / max(1, |b|)`` over the other axes, in float64 on the CPU.
    Entries equal in both (the same inf, NaN in both) count 0; a non-finite entry on one side only, inf."""
    a64, b64 = a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)
    same = (a64 == b64) | (torch.isnan(a64) & torch.isnan(b64))
    gap = ((a64 - b64).abs() / b64.abs().clamp_min(1.0)).nan_to_num(nan=float("inf"))
    gap = torch.where(same, torch.zeros_like(gap), gap)
    return gap.reshape(gap.shape[0], -1).amax(dim=1) if gap.dim() > 1 else gap


def take(res: FixedPointResult, idx: torch.Tensor) -> FixedPointResult:
    """The tokens ``idx`` of a flat ``[N]`` result, in that order (trace included)."""
    return FixedPointResult(
        context=res.context[idx],
        status=res.status[idx],
        iterations=res.iterations[idx],
        evaluations=res.evaluations[idx],
        residual={m: r[idx] for m, r in res.residual.items()},
        lowest_residual=res.lowest_residual[idx],
        metric=res.metric,
        threshold=res.threshold,
        max_iterations=res.max_iterations,
        trace=None if res.trace is None else {m: t[:, idx] for m, t in res.trace.items()},
    )


def solve_mismatches(
    a: FixedPointResult,
    b: FixedPointResult,
    ids: torch.Tensor,
    *,
    ctx_bound: float,
    band: float,
    labels_ab: tuple[str, str] = ("a", "b"),
) -> list[str]:
    """One line per token on which ``a`` and ``b`` (flat ``[N]``, both with a trace) disagree beyond
    rounding (module doc); [] when none. ``ids [N]`` name the tokens in the lines."""
    if a.trace is None or b.trace is None:
        raise ValueError("comparing solves needs their traces (SolverConfig.record_trace=True)")
    thr, metric = a.threshold, a.metric
    la, lb = labels_ab
    gap = entry_gap(a.context, b.context)
    parted = ((a.iterations != b.iterations) | (a.status != b.status)).cpu()
    apart = ~parted & (a.status == Status.CONVERGED).cpu() & ~(gap <= ctx_bound)
    out = []
    for t in (parted | apart).nonzero().flatten().tolist():
        ka, kb, sa, sb = int(a.iterations[t]), int(b.iterations[t]), int(a.status[t]), int(b.status[t])
        who = labels(ids, [t])
        if not parted[t]:
            out.append(
                f"{who}: contexts differ by {float(gap[t]):.3g} > {ctx_bound:.0e} (both at iteration {ka})"
            )
            continue
        k = min(ka, kb)
        ra, rb = float(a.trace[metric][k - 1, t]), float(b.trace[metric][k - 1, t])
        if not (relative_gap(ra, thr) <= band and relative_gap(rb, thr) <= band):
            out.append(
                f"{who}: {la} {Status(sa).label} at iteration {ka}, {lb} {Status(sb).label} at {kb}; "
                f"{metric} residuals at iteration {k}: {ra:.6g} vs {rb:.6g} (threshold {thr:.6g}, "
                f"rounding band {band:.0e} relative)"
            )
    return out
