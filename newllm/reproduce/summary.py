"""What the notes could not see, summarised over seeds from the measured rows and task results:
rate vs token count and vs tolerance, residual traces, Jacobian spectra, contraction and collapse
tables, and the "converges in 1 iteration" check (``mse(f(0), 0) = rms(f(0))² < 0.01``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..matrix import NOTES_ARCHITECTURES
from ..stats import rate_interval
from .plan import Plan

#: (label, experiment, where) of the model states compared in the contraction and collapse tables.
SOURCES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("untrained, 10 tokens", "untrained", {"tokens": 10, "clamp": None, "ids": "spread"}),
    ("untrained, 512 evenly spread ids", "untrained", {"tokens": 512, "clamp": None, "ids": "spread"}),
    ("untrained, 512 tokens of dialogue", "untrained", {"tokens": 512, "clamp": None, "ids": "dialogue"}),
    ("trained 001 (spec loop), 1 token", "phase1_spec", {"tokens": 1, "loop": "spec"}),
    ("trained 001 (spec loop), 10 tokens", "phase1_spec", {"tokens": 10, "loop": "spec"}),
    ("trained 002 (batched), 10 tokens", "phase1_scaling", {"tokens": 10, "loop": "batched"}),
    ("trained 002 (batched), 100 tokens", "phase1_scaling", {"tokens": 100, "loop": "batched"}),
    ("trained 002 (spec loop), 20 tokens", "phase1_scaling", {"tokens": 20, "loop": "spec"}),
    ("trained 002 (spec loop), 100 tokens", "phase1_scaling", {"tokens": 100, "loop": "spec"}),
    (
        "trained 001 recipe (batched), 512 spread ids",
        "phase1_large",
        {"recipe": "001", "ids": "spread", "loop": "batched"},
    ),
    (
        "trained 004 recipe (batched), 512 spread ids",
        "phase1_large",
        {"recipe": "004", "ids": "spread", "loop": "batched"},
    ),
    (
        "trained 004 recipe (spec loop), 512 spread ids",
        "phase1_large",
        {"recipe": "004", "ids": "spread", "loop": "spec"},
    ),
    (
        "trained 001 recipe (spec loop), 512 tokens of dialogue",
        "phase1_large",
        {"recipe": "001", "ids": "dialogue", "loop": "spec"},
    ),
    (
        "trained 004 recipe (spec loop), 512 tokens of dialogue",
        "phase1_large",
        {"recipe": "004", "ids": "dialogue", "loop": "spec"},
    ),
)


def _match(row: dict[str, Any], exp: str, judge: str, where: dict[str, Any]) -> bool:
    return (
        row.get("exp") == exp and row.get("judge") == judge and all(row.get(k) == v for k, v in where.items())
    )


def values(
    rows: list[dict[str, Any]], exp: str, judge: str, where: dict[str, Any], field: str
) -> list[float]:
    """Finite values of ``field`` over the matching rows (one per seed when ``where`` is complete)."""
    out = []
    for r in rows:
        if _match(r, exp, judge, where):
            v = r.get(field)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                out.append(float(v))
    return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def rate_point(
    rows: list[dict[str, Any]], exp: str, judge: str, where: dict[str, Any]
) -> dict[str, float] | None:
    """Mean rate over the seeds of the matching rows and its 95% interval (clustered Wilson)."""
    k = [int(x) for x in values(rows, exp, judge, where, "converged")]
    n = [int(x) for x in values(rows, exp, judge, where, "tokens")]
    if not k or len(k) != len(n):
        return None
    iv = rate_interval(k, n)
    return {
        "rate": sum(a / b for a, b in zip(k, n, strict=True)) / len(k),
        "lower": iv.lower,
        "upper": iv.upper,
    }


def summarize(rows: list[dict[str, Any]], results: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    first = min(plan.seeds)
    spectra = _pick(results, first, "spectrum")
    return {
        "trace_seed": first,
        "spectrum_token": spectra[0]["token_id"] if spectra else None,
        "rate_vs_tokens": _rate_vs_tokens(rows, plan),
        "rate_vs_threshold": _rate_vs_threshold(results),
        "traces": _pick(results, first, "traces"),
        "spectra": spectra,
        "contraction": _table(
            rows,
            "fixed_point",
            [
                ("sigma_max_mean", "mean"),
                ("sigma_max_max", "max"),
                ("sigma_below_1", "mean"),
                ("rho_mean", "mean"),
                ("rho_max", "max"),
                ("rho_below_1", "mean"),
                ("last_mse_mean", "mean"),
            ],
            require="sigma_max_mean",
        ),
        "collapse": _table(
            rows,
            "fixed_point",
            [
                ("context_rms", "mean"),
                ("rms_f0_min", "min"),
                ("rms_f0_mean", "mean"),
                ("pre_ln_var_f0_min", "min"),
                ("ln_gain_last_mean", "mean"),
                ("effective_rank", "mean"),
                ("max_cosine", "max"),
                ("forget_gate_mean", "mean"),
                ("input_gate_mean", "mean"),
            ],
            require="context_rms",
        ),
        "one_iteration": _one_iteration(rows),
    }


def _rate_vs_tokens(rows: list[dict[str, Any]], plan: Plan) -> dict[str, list[dict[str, Any]]]:
    """Per state and architecture, one curve per decision rule: mean rate and 95% interval per count."""
    out: dict[str, list[dict[str, Any]]] = {"untrained": [], "trained": []}
    specs: list[tuple[str, str, str, str, str, dict[str, Any], Sequence[int]]] = [
        ("untrained", "untrained", "seed000", "eval, l2 < 0.01, warmup 100 (000's rule)", "dashed",
         {"clamp": None, "ids": "spread"}, plan.untrained_counts),
        ("untrained", "untrained", "mse", "eval, mse < 0.01", "solid", {"clamp": None, "ids": "spread"},
         plan.untrained_counts),
        ("trained", "phase1_scaling", "train", "during training (spec loop)", "solid",
         {"loop": "spec", "recipe": "001"}, plan.scaling_counts),
        ("trained", "phase1_scaling", "l2", "after training: eval, l2 < 0.01", "dashed",
         {"loop": "spec", "recipe": "001"}, plan.scaling_counts),
    ]  # fmt: skip
    for arch in NOTES_ARCHITECTURES:
        for state, exp, judge, label, style, where, counts in specs:
            at = [(n, rate_point(rows, exp, judge, {**where, "arch": arch, "tokens": n})) for n in counts]
            pts = [(n, p) for n, p in at if p is not None]
            if pts:
                out[state].append(
                    {"arch": arch, "label": label, "style": style, "tokens": [n for n, _ in pts],
                     **{k: [p[k] for _, p in pts] for k in ("rate", "lower", "upper")}}
                )  # fmt: skip
    return out


def _rate_vs_threshold(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[list[float]]] = {}
    grids: dict[tuple, list[float]] = {}
    for r in results:
        tc = r.get("threshold_curve")
        k = r["key"]
        if tc is None or k.get("clamp") is not None:
            continue
        if r["experiment"] == "untrained" and k["tokens"] in (10, 512) and k.get("ids") == "spread":
            g = (k["arch"], "untrained", k["tokens"])
        elif r["experiment"] == "phase1_spec" and k["tokens"] == 10:
            g = (k["arch"], "trained", k["tokens"])
        else:
            continue
        groups.setdefault(g, []).append(tc["rate"])
        grids[g] = tc["grid"]
    out = []
    for (arch, state, n), curves in sorted(groups.items()):
        cols = list(zip(*curves, strict=True))
        out.append(
            {
                "arch": arch,
                "state": state,
                "tokens": n,
                "seeds": len(curves),
                "grid": grids[(arch, state, n)],
                "rate": [sum(c) / len(c) for c in cols],
                "min": [min(c) for c in cols],
                "max": [max(c) for c in cols],
            }
        )
    return out


def _pick(results: list[dict[str, Any]], seed: int, what: str) -> list[dict[str, Any]]:
    """Traces or spectra of the first seed's 10-token models, untrained and trained (001)."""
    out = []
    for r in results:
        k = r["key"]
        if k["seed"] != seed or k["tokens"] != 10 or k.get("clamp") is not None or what not in r:
            continue
        if k.get("ids", "spread") != "spread":
            continue
        if r["experiment"] == "untrained":
            state = "untrained"
        elif r["experiment"] == "phase1_spec":
            state = "trained"
        else:
            continue
        item = {"arch": k["arch"], "state": state, "seed": seed}
        if what == "traces":
            item.update(token_ids=r["trace_token_ids"], l2=r["traces"]["l2"])
        else:
            item.update(r["spectrum"])
        out.append(item)
    return sorted(out, key=lambda d: (d["state"] != "untrained", d["arch"]))


def _table(rows, judge: str, fields: list[tuple[str, str]], require: str) -> list[dict[str, Any]]:
    out = []
    for label, exp, where in SOURCES:
        for arch in NOTES_ARCHITECTURES:
            w = {**where, "arch": arch}
            if not values(rows, exp, judge, w, require):
                continue
            row: dict[str, Any] = {
                "source": label,
                "arch": arch,
                "seeds": len(values(rows, exp, judge, w, require)),
            }
            for f, how in fields:
                xs = values(rows, exp, judge, w, f)
                row[f] = (
                    None if not xs else (max(xs) if how == "max" else min(xs) if how == "min" else _mean(xs))
                )
            out.append(row)
    return out


def _one_iteration(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per trained source: tokens judged converged at iteration 1 (eval, mse < 0.01, from zeros), the
    share of converged tokens still below 0.01 one step later, the smallest rms(f(0)) and the
    smallest variance of the last LayerNorm's input at the zero context. Iteration-1 convergence
    happens exactly when rms(f(0)) < 0.1."""
    out = []
    for label, exp, where in SOURCES:
        if exp == "untrained":
            continue
        for arch in NOTES_ARCHITECTURES:
            w = {**where, "arch": arch}
            at1 = values(rows, exp, "mse", w, "converged_at_1")
            n = values(rows, exp, "mse", w, "tokens")
            rms = values(rows, exp, "fixed_point", w, "rms_f0_min")
            if not at1 or not rms:
                continue
            out.append(
                {
                    "source": label,
                    "arch": arch,
                    "converged_at_1": int(sum(at1)),
                    "tokens": int(sum(n)),
                    "stays_converged": _mean(values(rows, exp, "mse", w, "stays_converged")),
                    "next_mse_after_convergence": _mean(
                        values(rows, exp, "mse", w, "next_mse_after_convergence")
                    ),
                    "rms_f0_min": min(rms),
                    "pre_ln_var_f0_min": min(
                        values(rows, exp, "fixed_point", w, "pre_ln_var_f0_min"), default=None
                    ),
                    "ln_eps": _mean(values(rows, exp, "fixed_point", w, "ln_eps")),
                    "ln_gain_last_mean": _mean(values(rows, exp, "fixed_point", w, "ln_gain_last_mean")),
                    "criterion_agrees": (sum(at1) > 0) == (min(rms) < 0.1),
                }
            )
    return out
