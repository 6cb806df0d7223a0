"""From task results to flat measured rows, and from rows to the verdict of every claim.

Each task result becomes rows ``{exp, arch, seed, tokens, ..., judge, <fields>}``: one per judge
(eval-mode decisions), ``train`` (final training epoch), ``epoch`` (every epoch, with ``epoch``) and
``fixed_point`` (diagnostics at the fixed point). The ``arithmetic`` rows hold the threshold
conversions of :func:`newllm.metrics.convert_threshold` for the run's context dim.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..matrix import RECIPES, rules
from ..metrics import convert_threshold
from .claims import Claim, ClaimsData, Selection
from .plan import PROBE_ITERATIONS, Plan
from .verdicts import Stat, Verdict, check_consistency, combine, judge_paired, judge_single, stat


def rows_from_results(results: Iterable[dict[str, Any]], context_dim: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for r in results:
        base = {"exp": r["experiment"], **r["key"]}
        for name, j in r.get("judges", {}).items():
            rows.append({**base, "judge": name, **j})
        if "train" in r:
            rows.append({**base, "judge": "train", **r["train"]})
        for e in r.get("epochs", []):
            rows.append({**base, "judge": "epoch", **e})
        if "fixed_point" in r:
            rows.append({**base, "judge": "fixed_point", **r["fixed_point"]})
    rows.append({"exp": "arithmetic", "judge": "thresholds", "seed": "-", **arithmetic(context_dim)})
    return rows


def arithmetic(dim: int) -> dict[str, float]:
    """How much stricter ``l2 < 0.01`` is than ``mse < 0.01`` (and than ``rms < 0.01``) for dim ``D``."""
    l2_at_mse = convert_threshold(0.01, "mse", "l2", dim)  # sqrt(D * 0.01)
    mse_at_l2 = convert_threshold(0.01, "l2", "mse", dim)  # 0.01^2 / D
    l2_at_rms = convert_threshold(0.01, "rms", "l2", dim)  # sqrt(D) * 0.01
    mse_at_rms = convert_threshold(0.01, "rms", "mse", dim)  # 0.01^2
    return {
        "dim": dim,
        "l2_at_mse_0.01": l2_at_mse,
        "mse_at_l2_0.01": mse_at_l2,
        "strictness_mse_units": 0.01 / mse_at_l2,
        "strictness_l2_units": l2_at_mse / 0.01,
        "strictness_vs_rms_mse_units": mse_at_rms / mse_at_l2,
        "strictness_vs_rms_l2_units": l2_at_rms / 0.01,
    }


def select(rows: list[dict[str, Any]], sel: Selection) -> Stat | None:
    """The per-seed values of ``sel``; ValueError when a seed matches more than one row."""
    per_seed: dict[Any, Any] = {}
    for row in rows:
        if row.get("exp") != sel.exp or row.get("judge") != sel.judge:
            continue
        if any(k not in row or row[k] != v for k, v in sel.where.items()):
            continue
        seed = row.get("seed")
        if seed in per_seed:
            raise ValueError(f"selection {sel} matches more than one row for seed {seed!r}")
        per_seed[seed] = row.get(sel.field)
    return stat(per_seed)


def conditions(sel: Selection, plan: Plan) -> dict[str, Any]:
    """The conditions behind a selection: decision rule, training recipe, token ids, model."""
    w = sel.where
    out: dict[str, Any] = {}
    js = rules(plan.context_dim)
    if sel.judge in js:
        out["decision"] = js[sel.judge].to_dict()
    elif sel.judge in ("train", "epoch"):
        out["decision"] = {
            "mode": "train (dropout 0.1, weights updating)",
            "metric": "mse",
            "during": "training",
        }
    elif sel.judge == "fixed_point":
        out["decision"] = {"mode": "eval", "at": f"the last of {PROBE_ITERATIONS} iterates"}
    if sel.exp.startswith("phase1_"):
        loop = w.get("loop", "batched" if sel.exp == "phase1_large" else "spec")
        out["training"] = {
            **(RECIPES[w.get("recipe", "001")].settings or {}),
            "loop": loop,
            "grad_clip": 1.0,
            "optimizer": "Adam",
        }
    if sel.exp != "arithmetic":
        rule = "first" if sel.exp == "phase1_scaling" else "spread"
        out["ids"] = "0..N-1" if rule == "first" else "100, 200, ... (stride min(100, (V-1)//N))"
        cfg = plan.model_config(w.get("arch", "layerwise"), w.get("clamp"))
        out["model"] = {
            "arch": w.get("arch"),
            "dims": [cfg.embed_dim, cfg.context_dim, cfg.hidden_dim],
            "vocab": cfg.vocab_size,
            "clamp": cfg.context_clamp,
        }
    return out


def conditions_text(c: dict[str, Any]) -> str:
    """One line: ``eval, l2 < 0.01, warmup 100, max 200 | trained: spec, 3 ep, lr 0.0001, ...``."""
    parts = []
    d = c.get("decision")
    if d and "threshold" in d:
        parts.append(
            f"{d['mode']}, {d['metric']} < {d['threshold']:g}, warmup {d['warmup']}, max {d['max_iterations']}"
        )
    elif d:
        parts.append(", ".join(f"{v}" for v in d.values()))
    t = c.get("training")
    if t:
        parts.append(
            f"trained: {t['loop']} loop, {t['epochs']} ep, lr {t['learning_rate']:g}, max {t['max_iterations']} it, "
            f"mse < {t['threshold']:g}, warmup {t['warmup']}"
        )
    if "ids" in c:
        parts.append(f"ids {c['ids']}")
    return " | ".join(parts)


def evaluate(data: ClaimsData, rows: list[dict[str, Any]], plan: Plan) -> list[dict[str, Any]]:
    """Every claim with its variants' measurements and verdicts, JSON-ready."""
    out = []
    for c in data.claims:
        tol = data.tolerances[c.quantity]
        labelled: list[tuple[str, Verdict]] = []
        variants = []
        for v in c.variants:
            if v.b is None:
                verdict = judge_single(c.test, c.claimed, select(rows, v.a), tol)
            else:
                verdict = judge_paired(c.test, c.claimed, select(rows, v.a), select(rows, v.b), tol)
            labelled.append((v.label, verdict))
            cond = conditions(v.a, plan)
            variants.append(
                {
                    "label": v.label,
                    "conditions": cond,
                    "a": _sel_dict(v.a),
                    "b": _sel_dict(v.b) if v.b else None,
                    "verdict": verdict.status,
                    "detail": verdict.detail,
                    "measured": verdict.measured,
                }
            )
        status, text = combine(labelled)
        out.append(_claim_dict(data, c, tol, variants, status, text))
    return out


def consistency(data: ClaimsData) -> list[dict[str, Any]]:
    return [
        {**{k: e[k] for k in ("id", "note", "section", "text")}, **check_consistency(e)}
        for e in data.consistency
    ]


def _sel_dict(s: Selection) -> dict[str, Any]:
    return {"exp": s.exp, "judge": s.judge, "field": s.field, "where": s.where}


def _claim_dict(data: ClaimsData, c: Claim, tol, variants, status, text) -> dict[str, Any]:
    return {
        "id": c.id,
        "note": c.note,
        "note_file": data.note_file(c.note),
        "section": c.section,
        "also": [list(a) for a in c.also],
        "text": c.text,
        "test": c.test,
        "quantity": c.quantity,
        "claimed": c.claimed,
        "tolerance": tol,
        "status": status,
        "verdict": text,
        "variants": variants,
    }
