"""The task runners: build the model (trained through the matrix cache), judge it, measure it.

Every runner returns a JSON-ready dict: ``judges`` (one entry per decision rule: rate, counts,
iterations, residuals), ``fixed_point`` (diagnostics), and for probed models the threshold curve and
traces; trained tasks add ``epochs``/``train`` (Phase 1's history, with the gradient norms).
Wall-clock times live under ``"timing"`` only, so the rest is a deterministic function of the task's
conditions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .. import diagnostics, metrics
from ..config import SolverConfig
from ..matrix import build, initial_model, rules
from ..matrix.models import DEFAULT
from ..model import CVFPModel
from ..result import FixedPointResult
from ..solve import solve
from ..stop import Status, StopRule, replay
from .fixed_point import at_probe_end, first_step, ln_gains
from .plan import DIRECT_JUDGES, PROBE_ITERATIONS, PROBE_JUDGES, Plan, Task
from .probe import decide, judged, probe, rate_vs_threshold

#: Tokens whose residual traces are kept for the plots.
TRACE_TOKENS = 3


def run_task(task: Task, plan: Plan, cache: str | Path | None = DEFAULT) -> dict[str, Any]:
    """Run one task of ``plan`` with ``plan.threads`` torch threads (the numbers depend on them);
    trained models come from the matrix cache under ``cache`` (:func:`newllm.matrix.build`; None:
    train here). See the module doc for the result's layout."""
    t0, c0 = time.perf_counter(), time.process_time()
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        out = _untrained(task, plan) if task.experiment == "untrained" else _trained(task, plan, cache)
    finally:
        torch.set_num_threads(threads)
    out.setdefault("timing", {}).update(
        seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0
    )
    return {"task": task.name, "experiment": task.experiment, "key": task.key, "digest": task.digest, **out}


def _untrained(task: Task, plan: Plan) -> dict[str, Any]:
    """Probe the initial weights; add the train-mode controls and, for long sets, the head tokens alone."""
    k, cond = task.key, task.conditions
    model = initial_model(plan.model_config(k["arch"], k["clamp"]), k["seed"])
    ids = list(cond["ids"])
    if cond["light"]:  # only the train-mode controls
        out: dict[str, Any] = {"judges": {}, "timing": {}}
    else:
        out = _probe_all(
            model, ids, ids, plan, PROBE_JUDGES, contraction=k["clamp"] is None, head=cond["head"]
        )
    for name in cond["controls"]:
        gen = torch.Generator().manual_seed(k["seed"])  # the dropout masks: one stream per seed
        r = solve(model, ids, rules(model.context_dim)[name].solver_config(), generator=gen)
        out["judges"][name] = _solve_stats(r)
    return out


def _trained(task: Task, plan: Plan, cache: str | Path | None) -> dict[str, Any]:
    cond = task.conditions
    ids = list(cond["ids"])
    spec = plan.model_spec(task)
    built = build(spec, cache)
    model, local = built.model, built.ids(ids)
    grad = built.history.get("grad", {})
    epochs = []
    for e, its in zip(built.history["epochs"], built.history["iterations"], strict=True):
        d = {k2: v for k2, v in e.items() if k2 != "seconds"}
        if e["tokens"] <= 10:
            d["iterations"] = its
        epochs.append(d)
    out: dict[str, Any] = {"epochs": epochs, "train": {**epochs[-1], **grad}}
    if cond["probe"]:
        out.update(_probe_all(model, local, ids, plan, PROBE_JUDGES))
    else:
        out.update(_direct(model, local, ids, warmup10=spec.phase1().warmup == 10))
    out["timing"]["train_seconds"] = built.history["seconds"]
    out["timing"]["model_cached"] = built.history["cached"]
    return out


def _probe_all(
    model: CVFPModel,
    local: list[int],
    ids: list[int],
    plan: Plan,
    judges: tuple[str, ...],
    *,
    contraction: bool = True,
    head: int = 0,
) -> dict[str, Any]:
    """Probe 200 iterations and judge under ``judges``; measure the last iterate (Jacobian spectra when
    ``contraction``), the threshold curve and the traces; ``head > 0``: the first ``head`` tokens also
    probed without the rest of the sequence (:func:`head_alone`)."""
    t0 = time.perf_counter()
    p = probe(model, local, PROBE_ITERATIONS)
    js = rules(model.context_dim)
    out: dict[str, Any] = {"judges": {name: judged(p, js[name].solver_config()) for name in judges}}
    if head:
        head_alone(model, local, p, {n: js[n].solver_config() for n in judges}, head, out["judges"])
    out["fixed_point"] = at_probe_end(model, p, ids, plan.contraction_tokens if contraction else 0)
    out["threshold_curve"] = {
        "metric": "rel",
        "grid": plan.threshold_grid,
        "rate": rate_vs_threshold(p, "rel", plan.threshold_grid, PROBE_ITERATIONS),
    }
    out["traces"] = {m: p.residual[m][:, :TRACE_TOKENS].T.double().tolist() for m in ("l2", "mse")}
    out["trace_token_ids"] = ids[:TRACE_TOKENS]
    if contraction:
        out["spectrum"] = out["fixed_point"].pop("_spectrum")
    out["timing"] = {"probe_seconds": time.perf_counter() - t0}
    return out


def head_alone(model: CVFPModel, local: list[int], p, cfgs: dict[str, SolverConfig], n: int, into) -> None:
    """The first ``n`` tokens judged inside the sequence's probe ``p`` and probed on their own, without
    the rest of the sequence (``head_converged``, ``head_alone_converged`` of ``head_tokens`` per rule):
    if errors accumulated across tokens, the two would differ."""
    alone = probe(model, local[:n], PROBE_ITERATIONS)
    for name, cfg in cfgs.items():
        inside = int(decide(p, cfg).converged[:n].sum())
        solo = int(decide(alone, cfg).converged.sum())
        into[name].update(
            head_tokens=n,
            head_converged=inside,
            head_alone_converged=solo,
            head_rate=inside / n,
            head_alone_rate=solo / n,
        )


def _direct(model: CVFPModel, local: list[int], ids: list[int], *, warmup10: bool) -> dict[str, Any]:
    """Direct eval-mode solves (no probe) under :data:`DIRECT_JUDGES` and, for a recipe with warmup 10,
    ``mse_w10``; diagnostics at the ``mse`` rule's contexts."""
    t0 = time.perf_counter()
    js = rules(model.context_dim)
    names = DIRECT_JUDGES + (("mse_w10",) if warmup10 else ())
    out: dict[str, Any] = {"judges": {}}
    e = model.embed(local)
    results = {}
    for name in names:
        cfg = js[name].solver_config()
        results[name] = r = solve(model, local, cfg)
        out["judges"][name] = {**_solve_stats(r), **_recheck(model, e, r, cfg)}
    f0, pre_var = first_step(model, e)
    rms_f0 = diagnostics.context_rms(f0).double()
    out["fixed_point"] = {
        "rms_f0_min": float(rms_f0.min()),
        "rms_f0_mean": float(rms_f0.mean()),
        "pre_ln_var_f0_min": float(pre_var.min()),
        "pre_ln_var_f0_mean": float(pre_var.mean()),
        "ln_eps": model.block_list()[-1].norm.eps,
        **ln_gains(model),
        **diagnostics.collapse_report(results["mse"].context, torch.tensor(ids)),
    }
    out["timing"] = {"solve_seconds": time.perf_counter() - t0}
    return out


def _recheck(model: CVFPModel, e: torch.Tensor, r: FixedPointResult, cfg: SolverConfig) -> dict[str, Any]:
    """Share of converged tokens still below the threshold one step after their reported context."""
    conv = r.converged
    if not bool(conv.any()):
        return {"stays_converged": None, "next_mse_after_convergence": None}
    with torch.no_grad():
        c = r.context[conv]
        f = model.step(e[conv], c)
    again = metrics.residual(cfg.metric, f, c).unsqueeze(0)  # [1, n]: one more iteration
    still, _, _ = replay(again, StopRule(metric=cfg.metric, threshold=cfg.threshold))
    return {
        "stays_converged": float((still == Status.CONVERGED).double().mean()),
        "next_mse_after_convergence": float(metrics.mse(f, c).double().mean()),
    }


def _solve_stats(r: FixedPointResult) -> dict[str, Any]:
    conv = r.converged
    out: dict[str, Any] = {
        "tokens": r.num_tokens,
        "converged": int(conv.sum()),
        "rate": r.rate,
        "mean_iterations": r.mean_iterations,
        "mean_iterations_converged": None if not bool(conv.any()) else r.mean_iterations_converged,
        "context_norm": float(torch.linalg.vector_norm(r.context.double(), dim=-1).mean()),
        "diverged": int(r.diverged.sum()),
        "diverged_share": float(r.diverged.double().mean()),
        "converged_at_1": int((conv & (r.iterations == 1)).sum()),
    }
    for m in ("mse", "l2", "rel"):
        out[f"final_{m}"] = float(r.residual[m].double().mean())
    if r.num_tokens <= 10:
        out["iterations"] = r.iterations.tolist()
    return out
