"""Checks on the stated solve: ``metric_consistency``, ``convergence`` (with the baseline gate) and
``stable_convergence``."""

from __future__ import annotations

import math

import torch

from ..metrics import convert_threshold
from ..solve import solve
from ..stop import Status
from . import gate
from .compare import solve_mismatches
from .probe import Probe, labels
from .report import CheckResult

#: Metrics whose thresholds convert exactly (``rel`` needs ``||f(c)||`` per token and iteration).
EXACT_METRICS = ("mse", "l2", "rms")
#: metric_consistency: contexts of tokens that stopped at the same iteration (model dtype rounding).
METRIC_CONTEXT_BOUND = 1e-5


def _base(probe: Probe, dim: int) -> tuple[str, float]:
    """The stated metric and threshold, or for ``rel`` the l2 threshold at the median ``||c||`` of the
    stated solve's contexts (stated in the result)."""
    cfg = probe.solver
    if cfg.metric != "rel":
        return cfg.metric, cfg.threshold
    norm = float(torch.linalg.vector_norm(probe.solved.context.double(), dim=-1).median())
    return "l2", convert_threshold(cfg.threshold, "rel", "l2", dim, reference_norm=norm)


def metric_consistency(probe: Probe) -> CheckResult:
    """Solving in ``mse``, ``l2`` and ``rms`` at thresholds converted from the stated one
    (:func:`newllm.metrics.convert_threshold`) takes the same decisions for every token: same status
    and iteration, except residuals within ``16 (C + 4) eps`` (relative) of the threshold."""
    dim = int(probe.solved.context.shape[-1])
    eps = torch.finfo(probe.solved.context.dtype).eps
    base, thr = _base(probe, dim)
    band = 16 * (dim + 4) * eps
    runs = {}
    for m in EXACT_METRICS:
        t = convert_threshold(thr, base, m, dim)
        runs[m] = solve(
            probe.model, probe.token_ids, probe.with_solver(metric=m, threshold=t, record_trace=True)
        )
    problems = []
    for m in EXACT_METRICS:
        if m != base:
            lines = solve_mismatches(
                runs[base],
                runs[m],
                probe.token_ids,
                ctx_bound=METRIC_CONTEXT_BOUND,
                band=band,
                labels_ab=(f"{base} < {thr:.4g}", f"{m} < {runs[m].threshold:.4g}"),
            )
            problems += lines[:3]
    ok = not problems
    detail = (
        f"{base} < {thr:.4g}, "
        + ", ".join(f"{m} < {runs[m].threshold:.4g}" for m in EXACT_METRICS if m != base)
        + f": the same decisions for {probe.n} tokens (rel is not convertible exactly: not compared)"
    )
    return CheckResult.judged(
        "metric_consistency",
        ok,
        detail if ok else "; ".join(problems),
        thresholds={m: runs[m].threshold for m in EXACT_METRICS},
        band=band,
        converged={m: int(runs[m].converged.sum()) for m in EXACT_METRICS},
    )


def convergence_numbers(probe: Probe) -> dict:
    """Rate, counts and mean iterations of the stated solve (JSON-ready)."""
    r = probe.solved
    mic = r.mean_iterations_converged
    return {
        "tokens": r.num_tokens,
        "converged": int(r.converged.sum()),
        "rate": r.rate,
        "mean_iterations": r.mean_iterations,
        "mean_iterations_converged": None if math.isnan(mic) else mic,
        "status": {s.label: int((r.status == s).sum()) for s in Status if s != Status.RUNNING},
        "iterations": r.iterations.flatten().tolist(),
    }


def _against_baseline(numbers: dict, baseline: dict) -> list[str]:
    """Failures of the one gate (newllm.matrix.gate) against ``baseline``; improvements become a note."""
    found = gate.findings(baseline, numbers)
    b = baseline["configurations"][gate.CONFIG]
    numbers["baseline"] = {
        "tokens": b["tokens"],
        "converged": b["converged"],
        "mean_iterations": b["mean_iterations"],
        "findings": [f"{kind} {line}" for kind, line in found],
    }
    return [f"{kind} {line}" for kind, line in found if kind != "IMPROVED"]


def convergence(probe: Probe) -> CheckResult:
    """Rate and mean iterations under the stated solver. Fails when no token converges or one ends
    non-finite; with a baseline, also when the one gate (:mod:`newllm.matrix.gate`) finds a regression."""
    nums = convergence_numbers(probe)
    problems = []
    if nums["converged"] == 0:
        problems.append(f"no token of {nums['tokens']} converged (status counts {nums['status']})")
    nf = (probe.solved.status == Status.NONFINITE).nonzero().flatten().cpu()
    if nf.numel():
        problems.append(f"{labels(probe.token_ids, nf)} ended non-finite")
    if probe.baseline is not None:
        problems += _against_baseline(nums, probe.baseline)
    cfg = probe.solver
    head = (
        f"{nums['converged']}/{nums['tokens']} converged ({100 * nums['rate']:.1f}%), mean iterations "
        f"{nums['mean_iterations']:.2f} ({cfg.metric} < {cfg.threshold:g}, warmup {cfg.warmup}, max "
        f"{cfg.max_iterations}, {cfg.method})"
    )
    if probe.baseline is not None and not problems:
        b = nums["baseline"]
        notes = "; ".join(b["findings"]) or "within the gate"
        head += f"; baseline {b['converged']}/{b['tokens']}, {b['mean_iterations']:.2f}: {notes}"
    return CheckResult.judged(
        "convergence", not problems, head if not problems else head + ": " + "; ".join(problems), **nums
    )


def stable_convergence(probe: Probe) -> CheckResult:
    """Every converged token is still below the threshold one iteration later: solving again with
    ``confirm + 1`` (and one more iteration allowed) reports the same iteration for it."""
    r0, cfg = probe.solved, probe.solver
    r1 = solve(
        probe.model,
        probe.token_ids,
        probe.with_solver(confirm=cfg.confirm + 1, max_iterations=cfg.max_iterations + 1, record_trace=True),
    )
    conv = r0.converged
    if not bool(conv.any()):
        return CheckResult("stable_convergence", "skipped", "no token converged under the stated solver")
    stable = conv & r1.converged & (r1.iterations == r0.iterations)
    bad = (conv & ~stable).nonzero().flatten().cpu()
    lines = []
    m, c = cfg.metric, cfg.confirm
    assert r0.trace is not None and r1.trace is not None  # both solved with record_trace
    t0, t1 = r0.trace[m], r1.trace[m]
    for t in bad[:3].tolist():
        k = int(r0.iterations[t]) + c  # the iteration the decision was taken at
        now = float(t0[k - 1, t])
        nxt = float(t1[k, t]) if k < t1.shape[0] else math.nan
        lines.append(
            f"{labels(probe.token_ids, [t])}: {m} residual {now:.3g} at iteration {k}, "
            f"{nxt:.3g} at iteration {k + 1} (threshold {cfg.threshold:g})"
        )
    n_conv = int(conv.sum())
    ok = not lines
    detail = (
        f"{n_conv} converged tokens all still below the threshold one iteration later"
        if ok
        else f"{len(bad)}/{n_conv} converged tokens were above the threshold one iteration later: "
        + "; ".join(lines)
    )
    return CheckResult.judged(
        "stable_convergence",
        ok,
        detail,
        converged=n_conv,
        unstable=len(bad),
        unstable_token_ids=probe.token_ids[bad].tolist(),
    )
