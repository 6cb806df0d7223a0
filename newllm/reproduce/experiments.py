"""The task runners: build the model, (train it), judge it, and measure it at its fixed points.

Every runner returns a JSON-ready dict; wall-clock times live under ``"timing"`` only, so the rest
is a deterministic function of the task's conditions.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from .. import diagnostics, metrics
from ..config import SolverConfig
from ..matrix import build, initial_model, rules
from ..matrix.models import DEFAULT
from ..model import CVFPModel
from ..phase1 import Phase1Config
from ..result import FixedPointResult
from ..solve import solve
from ..stop import Status, StopRule, replay
from .contraction import gate_means, spectrum
from .plan import PROBE_ITERATIONS, PROBE_JUDGES, Plan, Task
from .probe import Probe, judged, probe, rate_vs_threshold

#: Tokens whose residual traces are kept for the plots.
TRACE_TOKENS = 3


def run_task(task: Task, plan: Plan, cache: str | Path | None = DEFAULT) -> dict[str, Any]:
    """Run one task of ``plan`` with ``plan.threads`` torch threads (the numbers depend on them);
    trained models come from the matrix cache under ``cache`` (:func:`newllm.matrix.build`; None:
    train here). See the module doc for the result's layout."""
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        out = _untrained(task, plan) if task.experiment == "untrained" else _trained(task, plan, cache)
    finally:
        torch.set_num_threads(threads)
    out.setdefault("timing", {})["seconds"] = time.perf_counter() - t0
    return {"task": task.name, "experiment": task.experiment, "key": task.key, "digest": task.digest, **out}


def _untrained(task: Task, plan: Plan) -> dict[str, Any]:
    k = task.key
    model = initial_model(plan.model_config(k["arch"], k["clamp"]), k["seed"])
    ids = plan.token_ids(task.conditions["token_rule"], k["tokens"])
    return _probe_all(model, ids, ids, plan, contraction=k["clamp"] is None)


def _trained(task: Task, plan: Plan, cache: str | Path | None) -> dict[str, Any]:
    k, cond = task.key, task.conditions
    ids = plan.token_ids(cond["token_rule"], k["tokens"])
    spec = plan.model_spec(task)
    built = build(spec, cache)
    model, local = built.model, built.ids(ids)
    pcfg = spec.phase1()
    epochs = []
    for e, its in zip(built.history["epochs"], built.history["iterations"], strict=True):
        d = {k2: v for k2, v in e.items() if k2 != "seconds"}
        if e["tokens"] <= 10:
            d["iterations"] = its
        epochs.append(d)
    out: dict[str, Any] = {"epochs": epochs, "train": epochs[-1]}
    if cond["probe"]:
        out.update(_probe_all(model, local, ids, plan))
    else:
        out.update(_direct(model, local, ids, plan, pcfg))
    out["timing"]["train_seconds"] = built.history["seconds"]
    out["timing"]["model_cached"] = built.history["cached"]
    return out


def _probe_all(
    model: CVFPModel, local: list[int], ids: list[int], plan: Plan, *, contraction: bool = True
) -> dict[str, Any]:
    """Probe 200 iterations, judge under every probe judge, measure the last iterate
    (with the Jacobian spectra unless ``contraction`` is False)."""
    t0 = time.perf_counter()
    p = probe(model, local, PROBE_ITERATIONS)
    js = rules(model.context_dim)
    out: dict[str, Any] = {
        "judges": {name: judged(p, js[name].solver_config()) for name in PROBE_JUDGES},
        "fixed_point": _fixed_point(model, p, ids, plan, contraction),
        "threshold_curve": {
            "metric": "rel",
            "grid": plan.threshold_grid,
            "rate": rate_vs_threshold(p, "rel", plan.threshold_grid, PROBE_ITERATIONS),
        },
        "traces": {m: p.residual[m][:, :TRACE_TOKENS].T.double().tolist() for m in ("l2", "mse")},
        "trace_token_ids": ids[:TRACE_TOKENS],
    }
    if contraction:
        out["spectrum"] = out["fixed_point"].pop("_spectrum")
    out["timing"] = {"probe_seconds": time.perf_counter() - t0}
    return out


def _fixed_point(model: CVFPModel, p: Probe, ids: list[int], plan: Plan, contraction: bool) -> dict[str, Any]:
    """Diagnostics at the probe's last iterate (the fixed point where the probe converged)."""
    rep = diagnostics.collapse_report(p.last, torch.tensor(ids))
    c = model.context_dim
    rms_f0 = p.norm[0].double() / math.sqrt(c)
    _, pre_var = first_step(model, p.embedding)
    last_res = p.residual["mse"][-1].double()
    out = {
        "last_mse_mean": float(last_res.mean()),
        "last_mse_max": float(last_res.max()),
        "max_abs_context": float(p.max_abs.max()),
        "rms_f0_min": float(rms_f0.min()),
        "rms_f0_mean": float(rms_f0.mean()),
        "pre_ln_var_f0_min": float(pre_var.min()),
        "pre_ln_var_f0_mean": float(pre_var.mean()),
        "ln_eps": model.blocks[-1].norm.eps,
        **_ln_gains(model),
        **rep,
        **gate_means(model, p.embedding, p.last),
    }
    if contraction:
        out.update(_contraction(model, p, ids, plan))
    return out


def _contraction(model: CVFPModel, p: Probe, ids: list[int], plan: Plan) -> dict[str, Any]:
    n = min(len(ids), plan.contraction_tokens)
    sp = spectrum(model, p.embedding[:n], p.last[:n])
    return {
        "contraction_tokens": n,
        "sigma_max_mean": float(sp["sigma_max"].mean()),
        "sigma_max_max": float(sp["sigma_max"].max()),
        "sigma_below_1": float((sp["sigma_max"] < 1).double().mean()),
        "rho_mean": float(sp["rho"].mean()),
        "rho_max": float(sp["rho"].max()),
        "rho_below_1": float((sp["rho"] < 1).double().mean()),
        "_spectrum": {
            "token_id": ids[0],
            "singular": sp["singular"][0].tolist(),
            "eig_abs": sp["eig_abs"][0].tolist(),
        },
    }


def first_step(model: CVFPModel, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``f(0)`` ``[n, C]`` and the variance ``[n]`` of the last LayerNorm's input during that step.

    Below the LayerNorm's ``eps`` that variance squeezes ``f(0)`` towards the LayerNorm bias: then
    ``mse(f(0), 0)`` is tiny and a zero start "converges" at iteration 1.
    """
    seen: list[torch.Tensor] = []
    hook = model.blocks[-1].norm.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            f0 = model.step(embedding, model.initial_context(embedding.shape[:-1]))
    finally:
        model.train(was)
        hook.remove()
    return f0, seen[-1].double().var(dim=-1, unbiased=False)


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


def _ln_gains(model: CVFPModel) -> dict[str, float]:
    w_all = torch.cat([b.norm.weight.detach().double() for b in model.blocks])
    w_last = model.blocks[-1].norm.weight.detach().double()
    return {
        "ln_gain_mean": float(w_all.mean()),
        "ln_gain_last_mean": float(w_last.mean()),
        "ln_gain_last_abs_mean": float(w_last.abs().mean()),
    }


def _direct(model: CVFPModel, local: list[int], ids: list[int], plan: Plan, pcfg: Phase1Config):
    """Direct eval-mode solves (no probe): ``mse`` and, for a recipe with warmup, ``mse_w10``."""
    t0 = time.perf_counter()
    js = rules(model.context_dim)
    names = ["mse"] + (["mse_w10"] if pcfg.warmup == 10 else [])
    out: dict[str, Any] = {"judges": {}}
    res = None
    e = model.embed(local)
    for name in names:
        cfg = js[name].solver_config()
        r = solve(model, local, cfg)
        out["judges"][name] = _solve_stats(r)
        out["judges"][name].update(_recheck(model, e, r, cfg))
        if res is None:
            res = r
    assert res is not None
    f0, pre_var = first_step(model, e)
    rms_f0 = diagnostics.context_rms(f0).double()
    out["fixed_point"] = {
        "rms_f0_min": float(rms_f0.min()),
        "rms_f0_mean": float(rms_f0.mean()),
        "pre_ln_var_f0_min": float(pre_var.min()),
        "pre_ln_var_f0_mean": float(pre_var.mean()),
        "ln_eps": model.blocks[-1].norm.eps,
        **_ln_gains(model),
        **diagnostics.collapse_report(res.context, torch.tensor(ids)),
    }
    out["timing"] = {"solve_seconds": time.perf_counter() - t0}
    return out


def _solve_stats(r: FixedPointResult) -> dict[str, Any]:
    conv = r.converged
    out = {
        "tokens": r.num_tokens,
        "converged": int(conv.sum()),
        "rate": r.rate,
        "mean_iterations": r.mean_iterations,
        "mean_iterations_converged": None if not bool(conv.any()) else r.mean_iterations_converged,
        "context_norm": float(torch.linalg.vector_norm(r.context.double(), dim=-1).mean()),
        "diverged": int(r.diverged.sum()),
        "converged_at_1": int((conv & (r.iterations == 1)).sum()),
    }
    for m in ("mse", "l2", "rel"):
        out[f"final_{m}"] = float(r.residual[m].double().mean())
    if r.num_tokens <= 10:
        out["iterations"] = r.iterations.tolist()
    return out
