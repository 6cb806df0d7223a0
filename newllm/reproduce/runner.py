"""``run_reproduction``: every task of a plan (reusing finished ones on resume), the verdicts, the
summaries, the figures, ``report.md`` and ``report.json`` in the output directory."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..matrix import CONTROL_RULES, rules
from ..matrix.models import DEFAULT
from ..metrics import convert_threshold
from ..runs.jsonio import atomic_write_bytes, dumps
from . import plots, store
from .claims import load_claims
from .execute import run_tasks
from .measure import arithmetic, consistency, evaluate, rows_from_results
from .plan import PROBE_ITERATIONS, PROBE_JUDGES, REPRO_VERSION, Plan
from .report import counts, write_markdown
from .summary import summarize

REPORT_MD = "report.md"
REPORT_JSON = "report.json"


@dataclass
class Reproduction:
    out: Path
    markdown: Path
    json: Path
    report: dict[str, Any]


def run_reproduction(
    plan: Plan,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    cache: str | Path | None = DEFAULT,
    jobs: int = 1,
) -> Reproduction:
    """Run ``plan`` into ``out`` with ``jobs`` worker processes. Without ``resume`` stored task results
    are discarded first. Trained models come from (and go to) the matrix cache under ``cache`` (None:
    train every one here)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        store.clear(out)
    t0 = time.perf_counter()
    results, reused = run_tasks(plan, out, resume=resume, progress=progress, jobs=jobs, cache=cache)
    report = build_report(plan, results)
    report["timing"] = {
        "seconds": time.perf_counter() - t0,
        "reused_tasks": reused,
        "jobs": jobs,
        "task_seconds": sum(r.get("timing", {}).get("seconds", 0.0) for r in results),
    }
    figures = write_figures(out, report)
    md = write_markdown(out / REPORT_MD, report, load_claims(), figures)
    js = out / REPORT_JSON
    atomic_write_bytes(js, (dumps(json_form(report), separators=(",", ":")) + "\n").encode())
    return Reproduction(out=out, markdown=md, json=js, report=report)


def build_report(plan: Plan, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything in ``report.json`` except timings: a deterministic function of the results."""
    data = load_claims()
    rows = rows_from_results(results, plan.context_dim)
    claims = evaluate(data, rows, plan)
    beyond = summarize(rows, results, plan)
    d = plan.context_dim
    arith = arithmetic(d)
    # a LayerNorm'd context has norm ~ sqrt(D): the rel equivalents of the two thresholds
    arith["rel_of_l2_0.01"] = convert_threshold(0.01, "l2", "rel", d, reference_norm=math.sqrt(d))
    arith["rel_of_mse_0.01"] = convert_threshold(0.01, "mse", "rel", d, reference_norm=math.sqrt(d))
    return {
        "newllm": __version__,
        "repro_version": REPRO_VERSION,
        "plan": plan_facts(plan),
        "tasks": len(results),
        "counts": counts(claims),
        "claims": claims,
        "consistency": consistency(data),
        "unmeasured": list(data.unmeasured),
        "arithmetic": arith,
        "slack": data.slack,
        "beyond": {k: v for k, v in beyond.items() if k not in ("traces", "spectra")},
        "beyond_plots": {k: beyond[k] for k in ("traces", "spectra")},
        "method": method_facts(plan),
    }


def plan_facts(plan: Plan) -> dict[str, Any]:
    """``report.json``'s ``plan``: the seeds, model size and conditions the report was run with."""
    cfg = plan.model_config("layerwise")
    return {
        "quick": plan.quick,
        "seeds": list(plan.seeds),
        "trained_seeds": list(plan.seeds_trained),
        "dims": [cfg.embed_dim, cfg.context_dim, cfg.hidden_dim],
        "vocab": cfg.vocab_size,
        "threads": plan.threads,
        "untrained_counts": list(plan.untrained_counts),
        "spec_counts": list(plan.spec_counts),
        "scaling_counts": list(plan.scaling_counts),
        "scaling_spec_counts": list(plan.scaling_spec_counts),
        "control_counts": list(plan.control_counts),
        "dialogue_count": plan.dialogue_count,
        "large_count": plan.large_count,
        "large": [list(x[:3]) + [list(x[3])] for x in plan.large],
        "noclip_count": plan.noclip_count,
        "noclip": [list(x[:3]) + [list(x[3])] for x in plan.noclip],
        "contraction_tokens": plan.contraction_tokens,
    }


def json_form(report: dict[str, Any]) -> dict[str, Any]:
    """``report.json``'s content: the report without the plot data, each distinct variant condition
    stored once under ``"conditions"`` and referred to by its key (``"C0"``, ``"C1"``, ...)."""
    keys: dict[str, str] = {}
    table: dict[str, Any] = {}
    claims = []
    for c in report["claims"]:
        variants = []
        for v in c["variants"]:
            blob = json.dumps(v["conditions"], sort_keys=True)
            if blob not in keys:
                keys[blob] = f"C{len(keys)}"
                table[keys[blob]] = v["conditions"]
            variants.append({**v, "conditions": keys[blob]})
        claims.append({**c, "variants": variants})
    out = {k: v for k, v in report.items() if k != "beyond_plots"}
    out["claims"] = claims
    out["conditions"] = table
    return out


def write_figures(out: Path, report: dict[str, Any]) -> dict[str, str]:
    """PNG files beside the report; returns figure name -> file name (none without matplotlib)."""
    if not plots.available():
        return {}
    b, bp, a = report["beyond"], report["beyond_plots"], report["arithmetic"]
    figs = {"rate_vs_tokens": plots.rate_vs_tokens(b["rate_vs_tokens"], out / "rate_vs_tokens.png").name}
    if b["rate_vs_threshold"]:
        marks = {"l2 < 0.01": a["rel_of_l2_0.01"], "mse < 0.01": a["rel_of_mse_0.01"]}
        figs["rate_vs_threshold"] = plots.rate_vs_threshold(
            b["rate_vs_threshold"], marks, out / "rate_vs_threshold.png"
        ).name
    if bp["traces"]:
        lines = {"l2 = 0.01": 0.01, f"mse = 0.01 (l2 = {a['l2_at_mse_0.01']:.3g})": a["l2_at_mse_0.01"]}
        figs["residual_traces"] = plots.residual_traces(bp["traces"], lines, out / "residual_traces.png").name
    if bp["spectra"]:
        figs["spectra"] = plots.spectra(bp["spectra"], out / "spectra.png").name
    return figs


def method_facts(plan: Plan) -> dict[str, Any]:
    """The values the method section of report.md quotes (templates/method.md)."""
    js = rules(plan.context_dim)
    named = "; ".join(f"`{n}`: {js[n].label}" for n in (*PROBE_JUDGES, *CONTROL_RULES.values()))
    dialogue = "not run"
    if plan.dialogue_count is not None or any(x[0] == "dialogue" for x in plan.large):
        dialogue = f"{plan.dialogue_count or plan.large_count} tokens"
    return {"rules": named, "probe_iterations": PROBE_ITERATIONS, "dialogue": dialogue}
