"""Issue 18's goals as checks on one benchmark record, and the choice of the best recipe.

Goal 1 (every criterion on every seed): converged fraction at rel < 1e-4 within 10 iterations
>= 0.95 (the lower of reset and carry mode), σ_max < 1 at every sampled fixed point (exact on the
sample and the Lanczos lower bound on every distinct token), effective rank >= 0.5 * D over
>= 2 * D distinct held-out tokens, max pairwise cosine < 0.9, probe accuracy >= 0.99.
Goal 2: Phase 2 perplexity on reset contexts <= 1.05 x bigram, and on carry contexts < bigram.
"""

from __future__ import annotations

from typing import Any

#: criterion -> (what, the value of one seed's measurements, its target as text, met(value, dim)).
GOAL1 = {
    "converged": (
        "converged fraction (rel < 1e-4, <= 10 it, min of reset/carry)",
        lambda m: min(m["converged_reset"], m["converged_carry"]),
        ">= 0.95",
        lambda v, m, dim: v >= 0.95,
    ),
    "sigma_max": (
        "σ_max at sampled fixed points (max of exact sample and estimate)",
        lambda m: max(m["sigma_max_exact_max"], m["sigma_max_estimate_max"]),
        "< 1",
        lambda v, m, dim: v < 1.0,
    ),
    "effective_rank": (
        "effective rank / D (over >= 2D distinct held-out tokens)",
        lambda m: m["effective_rank_fraction"],
        ">= 0.5",
        lambda v, m, dim: v >= 0.5 and m["tokens"] >= 2 * dim,
    ),
    "max_cosine": (
        "max pairwise cosine between different tokens",
        lambda m: m["max_cosine"],
        "< 0.9",
        lambda v, m, dim: v < 0.9,
    ),
    "probe": (
        "token-identity probe accuracy",
        lambda m: m["probe_accuracy"],
        ">= 0.99",
        lambda v, m, dim: v >= 0.99,
    ),
}


def _ratio(m: dict[str, Any], mode: str) -> float:
    p = m["phase2"][mode]
    return p["ppl"] / p["bigram_ppl"]


GOAL2 = {
    "reset_vs_bigram": (
        "Phase 2 ppl (reset) / bigram ppl",
        lambda m: _ratio(m, "reset"),
        "<= 1.05",
        1.05,
        True,
    ),
    "carry_vs_bigram": ("Phase 2 ppl (carry) / bigram ppl", lambda m: _ratio(m, "carry"), "< 1", 1.0, False),
}


def judge(per_seed: list[dict[str, Any]], dim: int) -> dict[str, Any]:
    """Per criterion: per-seed values, ``met`` (on every seed), the target; and ``goal1_met``/``met_count``."""
    out: dict[str, Any] = {}
    for name, (what, value, target, ok) in GOAL1.items():
        vals = [value(m) for m in per_seed]
        out[name] = {
            "what": what,
            "values": vals,
            "target": target,
            "met": all(ok(v, m, dim) for v, m in zip(vals, per_seed, strict=True)),
        }
    for name, (what, value, target, bound, inclusive) in GOAL2.items():
        vals = [value(m) for m in per_seed]
        met = all((v <= bound) if inclusive else (v < bound) for v in vals)
        out[name] = {"what": what, "values": vals, "target": target, "met": met}
    out["met_count"] = sum(out[n]["met"] for n in GOAL1)
    out["goal1_met"] = out["met_count"] == len(GOAL1)
    return out


def best(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The record meeting most goal-1 criteria; ties: the lower mean carry/bigram ratio, then name."""

    def key(r: dict[str, Any]):
        ratios = r["goals"]["carry_vs_bigram"]["values"]
        return (-r["goals"]["met_count"], sum(ratios) / len(ratios), r["recipe"], r["arch"])

    return min((r for r in records if r["recipe"] != "untrained"), key=key)
