"""Measurements at a model's fixed points: collapse diagnostics, gates, the first step from zero,
LayerNorm gains, oscillation of the iteration and the exact Jacobian (contraction)."""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import diagnostics
from ..model import CVFPModel
from .contraction import gate_means, spectrum
from .probe import OSCILLATION_FROM, Probe, oscillating


def at_probe_end(model: CVFPModel, p: Probe, ids: list[int], contraction_tokens: int) -> dict[str, Any]:
    """Diagnostics at the probe's last iterate (the fixed point where the probe converged), the
    oscillating tokens, and (``contraction_tokens > 0``) the Jacobian spectra of the first tokens."""
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
        "ln_eps": model.block_list()[-1].norm.eps,
        **ln_gains(model),
        **rep,
        **gate_means(model, p.embedding, p.last),
        **oscillation(p),
    }
    if contraction_tokens > 0:
        out.update(contraction(model, p, ids, contraction_tokens))
    return out


def oscillation(p: Probe) -> dict[str, Any]:
    """Tokens whose consecutive updates point in opposite directions over the last iterations, and the
    mean cosine between consecutive updates there."""
    osc = oscillating(p)
    return {
        "tokens": int(osc.numel()),
        "oscillating": int(osc.sum()),
        "oscillating_share": float(osc.double().mean()),
        "step_cosine_mean": float(torch.nanmean(p.step_cosine[OSCILLATION_FROM:].double())),
    }


def contraction(model: CVFPModel, p: Probe, ids: list[int], tokens: int) -> dict[str, Any]:
    """sigma_max and rho of the Jacobian at the last iterate of the first ``tokens`` tokens."""
    n = min(len(ids), tokens)
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
    hook = model.block_list()[-1].norm.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            f0 = model.step(embedding, model.initial_context(embedding.shape[:-1]))
    finally:
        model.train(was)
        hook.remove()
    return f0, seen[-1].double().var(dim=-1, unbiased=False)


def ln_gains(model: CVFPModel) -> dict[str, float]:
    w_all = torch.cat([b.norm.weight.detach().double() for b in model.block_list()])
    w_last = model.block_list()[-1].norm.weight.detach().double()
    return {
        "ln_gain_mean": float(w_all.mean()),
        "ln_gain_last_mean": float(w_last.mean()),
        "ln_gain_last_abs_mean": float(w_last.abs().mean()),
    }
