"""``collapse``: the stated solve's contexts must not collapse (a map that sends every token to the same
context converges trivially). Judged by :func:`newllm.diagnostics.is_collapsed`."""

from __future__ import annotations

import inspect

import torch

from .. import diagnostics
from .probe import Probe, labels
from .report import CheckResult

#: ``is_collapsed``'s limits (min_rms, max_cosine, mean_cosine), read from its signature: one place.
LIMITS = {
    k: p.default
    for k, p in inspect.signature(diagnostics.is_collapsed).parameters.items()
    if p.default is not inspect.Parameter.empty
}


def _closest_pair(contexts: torch.Tensor) -> tuple[int, int, float]:
    """Positions of the two rows with the largest cosine, and that cosine."""
    x = contexts.double()
    unit = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-300)
    sim = unit @ unit.T
    sim.fill_diagonal_(-2.0)
    flat = int(sim.argmax())
    return flat // sim.shape[0], flat % sim.shape[0], float(sim.max())


def judge_collapse(contexts: torch.Tensor, token_ids: torch.Tensor) -> CheckResult:
    """The ``collapse`` verdict on contexts ``[N, C]`` of tokens ``[N]`` (repeated ids count once):
    fails when :func:`newllm.diagnostics.is_collapsed` flags them (:data:`LIMITS`: some context RMS
    < 0.1, two tokens with cosine > 0.999, or mean cosine > 0.99), naming the rule, tokens and numbers."""
    x = contexts.detach().reshape(-1, contexts.shape[-1]).cpu()
    ids = token_ids.reshape(-1).cpu()
    seen: dict[int, int] = {}
    keep = [i for i, t in enumerate(ids.tolist()) if seen.setdefault(t, i) == i]
    x, ids = x[keep], ids[keep]
    if x.shape[0] < 2:
        return CheckResult("collapse", "skipped", "fewer than 2 distinct probe tokens: nothing to compare")
    rep = diagnostics.collapse_report(x, ids)
    i, j, cos = _closest_pair(x)
    rms = diagnostics.context_rms(x.double())
    low = int(rms.argmin())
    parts = {
        "rms": f"min context RMS {float(rms[low]):.3g} ({labels(ids, [low])})",
        "max": f"max cosine {cos:.6f} ({labels(ids, [i])} and {labels(ids, [j])})",
        "mean": f"mean cosine {rep['mean_cosine']:.4f}",
    }
    lim = LIMITS
    flagged = [
        f"{parts['rms']} < {lim['min_rms']}" if rep["context_rms_min"] < lim["min_rms"] else None,
        f"{parts['max']} > {lim['max_cosine']}" if rep["max_cosine"] > lim["max_cosine"] else None,
        f"{parts['mean']} > {lim['mean_cosine']}" if rep["mean_cosine"] > lim["mean_cosine"] else None,
    ]
    collapsed = diagnostics.is_collapsed(rep)
    rank = f"effective rank {rep['effective_rank']:.2f} over {x.shape[0]} tokens"
    if collapsed:
        detail = "collapsed: " + "; ".join(f for f in flagged if f) + f" ({rank})"
    else:
        detail = f"{rank}, {parts['max']}, {parts['mean']}, {parts['rms']}"
    return CheckResult.judged("collapse", not collapsed, detail, **rep)


def collapse(probe: Probe) -> CheckResult:
    """:func:`judge_collapse` on the contexts of the stated solve."""
    return judge_collapse(probe.solved.context, probe.token_ids)
