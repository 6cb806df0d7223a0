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
from .claims import Claim, ClaimsData, Selection, Variant
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


#: Shares of tokens and the (count, total) fields of a row they are made of: such a value is a rate
#: (binomial over seeds) and gets the rate interval and prediction range.
SHARES: dict[str, tuple[str, str]] = {
    "rate": ("converged", "tokens"),
    "diverged_share": ("diverged", "tokens"),
    "growth10_share": ("growth10", "tokens"),
    "oscillating_share": ("oscillating", "tokens"),
    "head_rate": ("head_converged", "head_tokens"),
    "head_alone_rate": ("head_alone_converged", "head_tokens"),
}


def select(rows: list[dict[str, Any]], sel: Selection) -> Stat | None:
    """The per-seed values of ``sel``; ValueError when a seed matches more than one row.

    A field of :data:`SHARES` is a rate made of a count of tokens; the threshold arithmetic
    (``exp == "arithmetic"``) is exact.
    """
    per_seed: dict[Any, Any] = {}
    counts: dict[Any, tuple[int, int]] = {}
    for row in rows:
        if row.get("exp") != sel.exp or row.get("judge") != sel.judge:
            continue
        if any(k not in row or row[k] != v for k, v in sel.where.items()):
            continue
        seed = row.get("seed")
        if seed in per_seed:
            raise ValueError(f"selection {sel} matches more than one row for seed {seed!r}")
        per_seed[seed] = row.get(sel.field)
        if sel.field in SHARES:
            k, n = (row.get(f) for f in SHARES[sel.field])
            if isinstance(k, int) and isinstance(n, int) and n > 0:
                counts[seed] = (k, n)
    return stat(per_seed, counts or None, exact=sel.exp == "arithmetic")


#: How each token set reads in the report.
TOKEN_SETS = {
    "spread": "100, 200, ... (stride min(100, (V-1)//N))",
    "first": "0..N-1",
    "dialogue": "the first N tokens of a conversation (ChatML, GPT-2 tokenizer)",
}


def token_set(sel: Selection) -> str:
    """The token set of a selection: named in ``where``, else the experiment's (002: 0..N-1)."""
    return sel.where.get("ids", "first" if sel.exp == "phase1_scaling" else "spread")


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
        recipe = w.get("recipe", "001") + ("-noclip" if sel.exp == "phase1_noclip" else "")
        settings = {"grad_clip": 1.0, **(RECIPES[recipe].settings or {})}
        out["training"] = {**settings, "loop": w.get("loop", "spec"), "optimizer": "Adam"}
    if sel.exp != "arithmetic":
        out["ids"] = TOKEN_SETS[token_set(sel)]
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
        stable = ", stable" if d.get("confirm") else ""
        parts.append(
            f"{d['mode']}, {d['metric']} < {d['threshold']:g}{stable}, warmup {d['warmup']}, max {d['max_iterations']}"
        )
    elif d:
        parts.append(", ".join(f"{v}" for v in d.values()))
    t = c.get("training")
    if t:
        clip = "no clipping" if t["grad_clip"] is None else f"clip {t['grad_clip']:g}"
        parts.append(
            f"trained: {t['loop']} loop, {t['epochs']} ep, lr {t['learning_rate']:g}, max {t['max_iterations']} it, "
            f"mse < {t['threshold']:g}, warmup {t['warmup']}, {clip}"
        )
    if "ids" in c:
        parts.append(f"ids {c['ids']}")
    if c.get("model", {}).get("clamp") is not None:
        parts.append(f"clamp ±{c['model']['clamp']:g}")
    return " | ".join(parts)


def judge_variant(c: Claim, v: Variant, rows: list[dict[str, Any]], slack: dict[str, float]) -> Verdict:
    """One variant (or control) of claim ``c`` judged on the measured rows."""
    if v.b is None:
        return judge_single(c.test, c.claimed, select(rows, v.a), slack, c.question)
    return judge_paired(c.test, c.claimed, select(rows, v.a), select(rows, v.b), slack, c.question)


def evaluate(data: ClaimsData, rows: list[dict[str, Any]], plan: Plan) -> list[dict[str, Any]]:
    """Every claim with its variants' measurements and verdicts, JSON-ready."""
    out = []
    for c in data.claims:
        slack = data.slack[c.quantity]
        labelled: list[tuple[str, bool, Verdict]] = []
        variants = []
        for v in c.variants:
            verdict = judge_variant(c, v, rows, slack)
            labelled.append((v.label, v.own, verdict))
            variants.append(_variant_dict(v, verdict, plan))
        control = judge_variant(c, c.control, rows, slack) if c.control else None
        comb = combine(labelled, control)
        d = _claim_dict(data, c, slack, variants)
        d.update(
            status=comb.status,
            verdict=comb.text,
            trivial=comb.trivial,
            holds_under=list(comb.holds_under),
            fails_under=list(comb.fails_under),
            inconclusive_under=list(comb.inconclusive_under),
            control=None if c.control is None else _variant_dict(c.control, control, plan),
        )
        out.append(d)
    return out


def _variant_dict(v: Variant, verdict: Verdict | None, plan: Plan) -> dict[str, Any]:
    """A variant in report.json: its conditions, verdict, both answers, and the per-seed numbers the
    verdict used (``values``, ``interval``, ``prediction`` of the value, or of ``a - b`` when paired)."""
    assert verdict is not None
    m = verdict.measured
    main = m.get("stat") or m.get("difference") or {}
    return {
        "label": v.label,
        "own": v.own,
        "conditions": conditions(v.a, plan),
        "a": _sel_dict(v.a),
        "b": _sel_dict(v.b) if v.b else None,
        **verdict.to_dict(),
        "n_seeds": main.get("n_seeds", 0),
        "values": main.get("values", []),
        "interval": main.get("interval"),
        "prediction": main.get("prediction"),
        "measured": m,
    }


def consistency(data: ClaimsData) -> list[dict[str, Any]]:
    return [
        {**{k: e[k] for k in ("id", "note", "section", "text")}, **check_consistency(e)}
        for e in data.consistency
    ]


def _sel_dict(s: Selection) -> dict[str, Any]:
    return {"exp": s.exp, "judge": s.judge, "field": s.field, "where": s.where}


def _claim_dict(data: ClaimsData, c: Claim, slack: dict[str, float], variants) -> dict[str, Any]:
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
        "slack": slack,
        "question": c.question,
        "reading": c.reading,
        "variants": variants,
    }
