"""One long eval-mode Picard run per token set, judged afterwards under any decision rule.

:func:`probe` iterates ``c <- model.step(e, c)`` from zeros for ``K`` iterations with no early stop,
keeping the residual of iteration ``k`` (between ``f(c_k)`` and ``c_k``) in every metric, the norm
and max-abs of ``f(c_k)``, its finiteness, and the cosine between consecutive updates, all ``[K, N]``. :func:`decide` then applies the
one stop rule (:func:`newllm.stop.replay`: non-finite, converged after warmup, l2 growth beyond
``divergence_factor`` x the lowest) to these traces, so one run answers every judge; it gives
the same statuses and iteration counts as :func:`newllm.solve` with that config (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .. import metrics as M
from ..config import SolverConfig
from ..model import CVFPModel
from ..stop import Status, StopRule, replay


@dataclass
class Probe:
    """Traces of a probe over ``N`` tokens and ``K`` iterations (row ``k-1`` is iteration ``k``)."""

    residual: dict[str, torch.Tensor]  # metric -> [K, N]
    norm: torch.Tensor  # [K, N] ||f(c_k)||_2
    max_abs: torch.Tensor  # [K, N] max_i |f(c_k)_i|
    finite: torch.Tensor  # [K, N] bool: f(c_k) finite
    #: [K, N] cosine between the updates f(c_k) - c_k and f(c_{k-1}) - c_{k-1} (row 0: NaN)
    step_cosine: torch.Tensor
    last: torch.Tensor  # [N, C] f(c_K), the last iterate
    embedding: torch.Tensor  # [N, E]

    @property
    def iterations(self) -> int:
        return self.norm.shape[0]


def probe(model: CVFPModel, token_ids: list[int], iterations: int) -> Probe:
    """Run ``iterations`` plain Picard steps from zeros for every token (eval mode, no grad)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            e = model.embed(token_ids)
            c = model.initial_context((len(token_ids),))
            res: dict[str, list[torch.Tensor]] = {m: [] for m in M.METRICS}
            norm, mabs, fin, cos = [], [], [], []
            prev = None
            for _ in range(iterations):
                f = model.step(e, c)
                for m, r in M.all_residuals(f, c).items():
                    res[m].append(r)
                norm.append(torch.linalg.vector_norm(f, dim=-1))
                mabs.append(f.abs().amax(dim=-1))
                fin.append(torch.isfinite(f).all(dim=-1))
                step = f - c
                cos.append(
                    torch.full_like(norm[-1], float("nan"))
                    if prev is None
                    else torch.nn.functional.cosine_similarity(step, prev, dim=-1, eps=1e-30)
                )
                prev, c = step, f
    finally:
        model.train(was)
    return Probe(
        residual={m: torch.stack(v) for m, v in res.items()},
        norm=torch.stack(norm),
        max_abs=torch.stack(mabs),
        finite=torch.stack(fin),
        step_cosine=torch.stack(cos),
        last=c,
        embedding=e,
    )


#: ``divergence_factor`` of the stricter divergence check reported beside each judge (``growth10``).
GROWTH_FACTOR = 10.0


@dataclass
class Decision:
    """Per-token outcome of a judge on a probe, as :class:`newllm.FixedPointResult` would report it."""

    status: torch.Tensor  # [N] int8 codes of newllm.result
    iterations: torch.Tensor  # [N] stop iteration, else max_iterations
    index: torch.Tensor  # [N] trace row of the reported context / residual

    @property
    def converged(self) -> torch.Tensor:
        return self.status == Status.CONVERGED


def decide(p: Probe, cfg: SolverConfig) -> Decision:
    """The solver's decision under ``cfg`` (picard, damping 1, reset mode) from the probe's traces:
    :func:`newllm.stop.replay` of the one stop rule."""
    if cfg.method != "picard" or cfg.damping != 1.0 or cfg.stall_window is not None:
        raise ValueError("decide() replays plain Picard without a stall window only")
    k_max = cfg.max_iterations
    if k_max > p.iterations:
        raise ValueError(f"the probe ran {p.iterations} iterations; the judge needs {k_max}")
    status, iters, index = replay(
        p.residual[cfg.metric][:k_max],
        StopRule.of(cfg),
        residual_l2=p.residual["l2"][:k_max],
        finite=p.finite[:k_max],
    )
    # the solver keeps the last finite iterate of a non-finite token
    index = torch.where(status == Status.NONFINITE, (index - 1).clamp_min(0), index)
    return Decision(status=status, iterations=iters, index=index)


def judged(p: Probe, cfg: SolverConfig) -> dict:
    """JSON-ready statistics of a judge: rate, mean iterations (over all tokens, capped ones at the
    budget; and over converged ones), context norm, final residuals, the tokens that diverge (non-finite
    or growth, with the judge's ``divergence_factor`` and with :data:`GROWTH_FACTOR`), and
    ``stays_converged``: the share of converged tokens whose residual one iteration later (from the
    reported context) is still below the threshold (None when no converged token has a next iteration)."""
    d = decide(p, cfg)
    n = d.status.numel()
    cols = torch.arange(n)
    conv = d.converged
    norm = p.norm[d.index, cols].double()
    grow, _, _ = replay(
        p.residual[cfg.metric][: cfg.max_iterations],
        StopRule.of(cfg, divergence_factor=GROWTH_FACTOR),
        residual_l2=p.residual["l2"][: cfg.max_iterations],
        finite=p.finite[: cfg.max_iterations],
    )
    growth10 = int(((grow == Status.NONFINITE) | (grow == Status.GROWTH)).sum())
    out: dict[str, Any] = {
        "tokens": n,
        "converged": int(conv.sum()),
        "rate": float(conv.double().mean()),
        "growth10": growth10,
        "growth10_share": growth10 / n,
        "mean_iterations": float(d.iterations.double().mean()),
        "mean_iterations_converged": float(d.iterations[conv].double().mean()) if bool(conv.any()) else None,
        "context_norm": float(norm.mean()),
        "diverged": int(((d.status == Status.NONFINITE) | (d.status == Status.GROWTH)).sum()),
        "diverged_share": float(
            ((d.status == Status.NONFINITE) | (d.status == Status.GROWTH)).double().mean()
        ),
        "converged_at_1": int((conv & (d.iterations == 1)).sum()),
    }
    for m in ("mse", "l2", "rel"):
        out[f"final_{m}"] = float(p.residual[m][d.index, cols].double().mean())
    nxt = conv & (d.index + 1 < p.iterations)
    if bool(nxt.any()):
        rows = (d.index + 1)[nxt]
        again = p.residual[cfg.metric][rows, cols[nxt]].unsqueeze(0)  # [1, n']: one more iteration
        still, _, _ = replay(again, StopRule(metric=cfg.metric, threshold=cfg.threshold))
        out["stays_converged"] = float((still == Status.CONVERGED).double().mean())
        out["next_mse_after_convergence"] = float(p.residual["mse"][rows, cols[nxt]].double().mean())
    else:
        out["stays_converged"] = None
        out["next_mse_after_convergence"] = None
    if n <= 10:
        out["iterations"] = d.iterations.tolist()
    return out


def rate_vs_threshold(p: Probe, metric: str, grid: list[float], max_iterations: int) -> list[float]:
    """Convergence rate (warmup 0, no growth guard) for each threshold of ``grid`` in ``metric``.

    One replay for the whole grid: ``residual < t`` exactly when ``residual / t < 1``, so the traces
    divided by each threshold are judged together under threshold 1.
    """
    r = p.residual[metric][:max_iterations].double()
    k, n = r.shape
    t = torch.tensor(grid, dtype=torch.float64)
    scaled = (r.unsqueeze(1) / t.view(1, -1, 1)).reshape(k, len(grid) * n)
    fin = p.finite[:max_iterations].unsqueeze(1).expand(k, len(grid), n).reshape(k, len(grid) * n)
    status, _, _ = replay(scaled, StopRule(metric=metric, threshold=1.0), finite=fin)
    return (status == Status.CONVERGED).view(len(grid), n).double().mean(dim=1).tolist()


#: Iterations after which the direction of consecutive updates is averaged (the notes' warmup).
OSCILLATION_FROM = 100


def oscillating(p: Probe, start: int = OSCILLATION_FROM) -> torch.Tensor:
    """``[N]`` bool: the mean cosine between consecutive updates over iterations ``start + 1 .. K`` is
    negative (each update mostly undoes the previous one)."""
    cos = p.step_cosine[start:].double()
    return torch.nanmean(cos, dim=0) < 0
