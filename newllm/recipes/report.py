"""The recipe benchmark's outputs: ``report.json`` (as measured), ``report.md`` (tables and the goal
verdicts) and ``pareto.png`` (contraction vs information, Pareto front marked)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..runs.jsonio import dumps
from .judge import GOAL1, GOAL2


def _mean(vals: list[float]) -> float:
    return sum(vals) / len(vals)


def spread(vals: list[float]) -> str:
    """``mean`` for one value, ``mean [min, max]`` over seeds otherwise."""
    if any(isinstance(v, float) and math.isnan(v) for v in vals):
        return "nan"
    if len(vals) == 1:
        return f"{vals[0]:.3g}"
    return f"{_mean(vals):.3g} [{min(vals):.3g}, {max(vals):.3g}]"


def point(record: dict[str, Any]) -> tuple[float, float]:
    """``(contraction, information)``: mean σ_max (max over sampled fixed points) and mean effective-rank fraction."""
    goals = record["goals"]
    return _mean(goals["sigma_max"]["values"]), _mean(goals["effective_rank"]["values"])


def pareto(records: list[dict[str, Any]]) -> list[int]:
    """Indices of the records no other record beats on both axes (lower σ_max, higher rank)."""
    pts = [point(r) for r in records]
    front = []
    for i, (s, e) in enumerate(pts):
        dominated = any((s2 <= s and e2 >= e) and (s2, e2) != (s, e) for s2, e2 in pts)
        if not dominated:
            front.append(i)
    return front


def plot(records: list[dict[str, Any]], path: Path) -> bool:
    """Write the Pareto plot; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    front = set(pareto(records))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, r in enumerate(records):
        s, e = point(r)
        ax.scatter(s, e, marker="o" if r["arch"] == "layerwise" else "s", c="C3" if i in front else "C0")
        ax.annotate(f"{r['recipe']} ({r['arch'][:3]})", (s, e), fontsize=6)
    ax.axvline(1.0, ls="--", c="gray")
    ax.axhline(0.5, ls="--", c="gray")
    ax.set_xscale("log")
    ax.set_xlabel("contraction: max σ_max at sampled held-out fixed points (mean over seeds; < 1 contracts)")
    ax.set_ylabel("information: effective rank / D")
    ax.set_title("Phase 1 recipes: contraction vs information (red: Pareto front)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _row(r: dict[str, Any]) -> str:
    g, m = r["goals"], r["per_seed"]
    p2 = {k: [s["phase2"][k]["ppl"] for s in m] for k in ("reset", "carry")}
    cells = [
        r["recipe"],
        r["arch"],
        spread(g["converged"]["values"]),
        spread(g["sigma_max"]["values"]),
        spread([s["rho_exact_max"] for s in m]),
        spread([s["effective_rank"] for s in m]),
        spread(g["max_cosine"]["values"]),
        spread([s["mean_cosine"] for s in m]),
        spread(g["probe"]["values"]),
        spread([s["carry_vs_reset"]["distance_max"] for s in m]),
        spread([s["carry_vs_reset"]["within_bound"] for s in m]),
        spread(p2["reset"]),
        spread(p2["carry"]),
        f"{g['met_count']}/{len(GOAL1)}",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| recipe | arch | converged | σ_max | ρ | eff. rank | max cos | mean cos | probe | carry−reset max "
    "| within bound | ppl reset | ppl carry | goal 1 |\n|" + "---|" * 14
)


def markdown(report: dict[str, Any], verdicts: str) -> str:
    """The report's markdown: data, baselines, the table, the full-size re-measurement and the verdicts."""
    w, d = report["workload"], report["data"]
    base = report["records"][0]["per_seed"][0]["phase2"]["reset"]
    lines = [
        f"# Phase 1 recipe benchmark ({w['name']})",
        "",
        f"Reproduce: `newllm recipes{' --quick' if w['name'] == 'quick' else ''}` "
        f"({report['seconds'] / 60:.1f} min on this machine).",
        "",
        f"Data: {d['source']}; {d['conversations']} conversations (max {w['max_length']} tokens), split by "
        f"conversation (split seed 0): {d['train_conversations']} train ({d['train_tokens']} tokens), "
        f"{d['heldout_conversations']} held out ({d['heldout_tokens']} tokens, "
        f"{d['heldout_distinct_tokens']} distinct). Model dims E = C = H = {w['dim']}; seeds "
        f"{w['seeds']} (cells: mean [min, max] over seeds). Phase 2: {w['phase2_epochs']} epochs, lr "
        f"{w['phase2_lr']:g}; baselines on the same held-out pairs: unigram ppl {base['unigram_ppl']:.1f}, "
        f"bigram ppl {base['bigram_ppl']:.1f}.",
        "",
        "![Pareto plot](pareto.png)",
        "",
        HEADER,
        *(_row(r) for r in report["records"]),
        "",
    ]
    if report.get("confirm"):
        seeds = report["confirm"][0]["seeds"]
        lines += [f"## The best recipe on further seeds {seeds} (spread over seeds)", "",
                  HEADER, *(_row(r) for r in report["confirm"]), ""]  # fmt: skip
    if report.get("full_size"):
        lines += [f"## The best recipe re-measured at D = {report['full_size'][0]['dim']} (seed 0)", "",
                  HEADER, *(_row(r) for r in report["full_size"]), ""]  # fmt: skip
    return "\n".join(lines) + verdicts


def goal_lines(record: dict[str, Any]) -> list[str]:
    """One line per criterion of ``record``: met / NOT met, the values and the target."""
    out = []
    for name in (*GOAL1, *GOAL2):
        c = record["goals"][name]
        vals = ", ".join(f"{v:.4g}" for v in c["values"])
        out.append(f"- {c['what']}: **{'met' if c['met'] else 'NOT met'}** ({vals}; target {c['target']})")
    return out


def write(report: dict[str, Any], out: Path, verdicts: str) -> list[Path]:
    """``report.json``, ``report.md`` and (when matplotlib is there) ``pareto.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md"]
    paths[0].write_text(dumps(report, indent=1) + "\n")
    paths[1].write_text(markdown(report, verdicts))
    if plot(report["records"], out / "pareto.png"):
        paths.append(out / "pareto.png")
    return paths


def _closest(records: list[dict[str, Any]], name: str, lower: bool) -> str:
    """Which records meet criterion ``name``, else the closest one (mean over seeds)."""
    met = [f"`{r['recipe']}`/{r['arch']}" for r in records if r["goals"][name]["met"]]
    if met:
        return f"met by {len(met)} of {len(records)}: {', '.join(met)}"
    pick = (min if lower else max)(records, key=lambda r: _mean(r["goals"][name]["values"]))
    return f"met by none; closest `{pick['recipe']}`/{pick['arch']} at {_mean(pick['goals'][name]['values']):.4g}"


#: criterion -> whether lower values are better (for "closest").
LOWER = {"converged": False, "sigma_max": True, "effective_rank": False, "max_cosine": True, "probe": False,
         "reset_vs_bigram": True, "carry_vs_bigram": True}  # fmt: skip


def verdicts(report: dict[str, Any]) -> str:
    """The goal section: the best record's criteria, then every criterion across all records."""
    recs = [r for r in report["records"] if r["recipe"] != "untrained"]
    b = report["best"]
    top = next(r for r in recs if (r["recipe"], r["arch"]) == (b["recipe"], b["arch"]))
    goal1 = "met" if top["goals"]["goal1_met"] else "NOT met"
    lines = [
        "",
        "## Goals (issue 18)",
        "",
        f"**Goal 1: {goal1}.** Best recipe (most goal-1 criteria met on every seed): `{b['recipe']}` on "
        f"{b['arch']}, {b['met_count']}/{len(GOAL1)} criteria. Its values per seed:",
        "",
        *goal_lines(top),
        "",
        "Each criterion across the trained recipes:",
        "",
        *(f"- {GOAL1[n][0]}: {_closest(recs, n, LOWER[n])}" for n in GOAL1),
        "",
        f"**Goal 2.** Reset contexts of the best recipe vs bigram: "
        f"{'met' if top['goals']['reset_vs_bigram']['met'] else 'NOT met'} (ratio "
        f"{spread(top['goals']['reset_vs_bigram']['values'])}, target <= 1.05). A contractive (σ_max < 1), "
        "history-carrying model beating the bigram on held-out conversations: " + _goal2_carry(recs),
        "",
        "- " + GOAL2["reset_vs_bigram"][0] + ": " + _closest(recs, "reset_vs_bigram", True),
        "- " + GOAL2["carry_vs_bigram"][0] + ": " + _closest(recs, "carry_vs_bigram", True),
        "",
    ]
    return "\n".join(lines)


def _goal2_carry(recs: list[dict[str, Any]]) -> str:
    ok = [r for r in recs if r["goals"]["sigma_max"]["met"] and r["goals"]["carry_vs_bigram"]["met"]]
    if ok:
        return "**met** by " + ", ".join(f"`{r['recipe']}`/{r['arch']}" for r in ok) + "."
    contractive = [r for r in recs if r["goals"]["sigma_max"]["met"]]
    if not contractive:
        return "**NOT met**: no recipe is contractive at every sampled fixed point on every seed."
    pick = min(contractive, key=lambda r: _mean(r["goals"]["carry_vs_bigram"]["values"]))
    return (
        f"**NOT met**; the closest contractive one is `{pick['recipe']}`/{pick['arch']} with carry ppl / bigram "
        f"ppl {spread(pick['goals']['carry_vs_bigram']['values'])}."
    )
