"""Comparing two solves of the same tokens that may differ only by float rounding.

Iteration counts and statuses must agree, except where the two runs' residuals at the first
iteration where they part straddle the threshold while lying within ``res_atol`` of each other: the
one place rounding may flip a decision. Where both agree, contexts agree within ``ctx_atol``.
"""

from __future__ import annotations

import torch

from newllm import FixedPointResult


def solve_mismatches(
    a: FixedPointResult, b: FixedPointResult, *, ctx_atol: float, res_atol: float, labels=("a", "b")
) -> list[str]:
    """Human-readable disagreements between ``a`` and ``b`` (same tokens, flat ``[N]``); [] when none.

    Both need ``trace`` (``SolverConfig.record_trace``)."""
    assert a.trace is not None and b.trace is not None, "record_trace=True is needed"
    thr, metric = a.threshold, a.metric
    out = []
    ia, ib = a.iterations.flatten(), b.iterations.flatten()
    ta, tb = (
        a.trace[metric].reshape(a.trace[metric].shape[0], -1),
        b.trace[metric].reshape(b.trace[metric].shape[0], -1),
    )
    ca, cb = a.context.reshape(ia.numel(), -1), b.context.reshape(ib.numel(), -1)
    sa, sb = a.status.flatten(), b.status.flatten()
    for t in range(ia.numel()):
        ka, kb = int(ia[t]), int(ib[t])
        if ka != kb or int(sa[t]) != int(sb[t]):  # one run decided at k, the other did not
            k = min(ka, kb)
            ra, rb = float(ta[k - 1, t]), float(tb[k - 1, t])
            straddle = (ra < thr) != (rb < thr) and abs(ra - rb) <= res_atol
            if not straddle:
                out.append(
                    f"token {t}: {labels[0]} stopped at {ka} (status {int(sa[t])}), {labels[1]} at {kb} "
                    f"(status {int(sb[t])}); {metric} residuals at iteration {k}: {ra:.6g} vs {rb:.6g} "
                    f"(threshold {thr:.6g}, rounding allowance {res_atol:.1g})"
                )
            continue
        gap = float((ca[t].double() - cb[t].to(ca.device).double()).abs().max())
        if not gap <= ctx_atol:
            out.append(f"token {t}: contexts differ by {gap:.3g} > {ctx_atol:.1g} (both at iteration {ka})")
    return out


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
