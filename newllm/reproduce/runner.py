"""``run_reproduction``: every task of a plan (reusing finished ones on resume), the verdicts, the
summaries, the figures, ``report.md`` and ``report.json`` in the output directory."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import __version__
from ..matrix import NOTES_RULES, rules
from ..matrix.models import DEFAULT
from ..metrics import convert_threshold
from ..runs.jsonio import atomic_write_bytes, dumps
from . import plots, store
from .claims import load_claims
from .experiments import run_task
from .measure import arithmetic, consistency, evaluate, rows_from_results
from .plan import PROBE_ITERATIONS, REPRO_VERSION, Plan
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
) -> Reproduction:
    """Run ``plan`` into ``out``. Without ``resume`` stored task results are discarded first. Trained
    models come from (and go to) the matrix cache under ``cache`` (None: train every one here)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        store.clear(out)
    t0 = time.perf_counter()
    tasks = plan.tasks()
    results: list[dict[str, Any]] = []
    reused = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        bar = tqdm(tasks, desc="reproduce", unit="exp", disable=not progress, dynamic_ncols=True)
        for task in bar:
            bar.set_postfix_str(task.name, refresh=False)
            r = store.load_finished(out, task) if resume else None
            if r is None:
                path = store.save(out, task, run_task(task, plan, cache))
                r = json.loads(path.read_text())  # the stored form, whether fresh or resumed
            else:
                reused += 1
            results.append(r)
        bar.close()
    finally:
        torch.set_num_threads(threads)
    report = build_report(plan, results)
    report["timing"] = {
        "seconds": time.perf_counter() - t0,
        "reused_tasks": reused,
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
    cfg = plan.model_config("layerwise")
    d = plan.context_dim
    arith = arithmetic(d)
    # a LayerNorm'd context has norm ~ sqrt(D): the rel equivalents of the two thresholds
    arith["rel_of_l2_0.01"] = convert_threshold(0.01, "l2", "rel", d, reference_norm=math.sqrt(d))
    arith["rel_of_mse_0.01"] = convert_threshold(0.01, "mse", "rel", d, reference_norm=math.sqrt(d))
    return {
        "newllm": __version__,
        "repro_version": REPRO_VERSION,
        "plan": {
            "quick": plan.quick,
            "seeds": list(plan.seeds),
            "dims": [cfg.embed_dim, cfg.context_dim, cfg.hidden_dim],
            "vocab": cfg.vocab_size,
            "threads": plan.threads,
            "untrained_counts": list(plan.untrained_counts),
            "spec_counts": list(plan.spec_counts),
            "scaling_counts": list(plan.scaling_counts),
            "scaling_spec_counts": list(plan.scaling_spec_counts),
            "large_count": plan.large_count,
            "contraction_tokens": plan.contraction_tokens,
        },
        "tasks": len(results),
        "counts": counts(claims),
        "claims": claims,
        "consistency": consistency(data),
        "unmeasured": list(data.unmeasured),
        "arithmetic": arith,
        "tolerances": data.tolerances,
        "beyond": {k: v for k, v in beyond.items() if k not in ("traces", "spectra")},
        "beyond_plots": {k: beyond[k] for k in ("traces", "spectra")},
        "method": method_lines(plan),
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
    b, bp = report["beyond"], report["beyond_plots"]
    figs = {"rate_vs_tokens": plots.rate_vs_tokens(b["rate_vs_tokens"], out / "rate_vs_tokens.png").name}
    if b["rate_vs_threshold"]:
        figs["rate_vs_threshold"] = plots.rate_vs_threshold(
            b["rate_vs_threshold"], out / "rate_vs_threshold.png"
        ).name
    if bp["traces"]:
        a = report["arithmetic"]
        lines = {"l2 = 0.01": 0.01, f"mse = 0.01 (l2 = {a['l2_at_mse_0.01']:.3g})": a["l2_at_mse_0.01"]}
        figs["residual_traces"] = plots.residual_traces(bp["traces"], lines, out / "residual_traces.png").name
    if bp["spectra"]:
        figs["spectra"] = plots.spectra(bp["spectra"], out / "spectra.png").name
    return figs


def method_lines(plan: Plan) -> list[str]:
    js = rules(plan.context_dim)
    cfg = plan.model_config("layerwise")
    named = "; ".join(f"`{js[n].name}`: {js[n].label}" for n in NOTES_RULES)
    return [
        f"Eval-mode judges (dropout off): {named}. A token converges at the first iteration k > warmup whose "
        "residual between f(c_k) and c_k is below the threshold (newllm.metrics).",
        f"Untrained and small trained models are probed once: {PROBE_ITERATIONS} plain iterations from the zero context "
        "with every metric recorded; each judge's decision replays newllm.solve's stopping rules on those traces "
        "(tests check the two agree). Larger trained models are judged with newllm.solve directly.",
        "Phase 1 training is newllm.phase1.train_phase1 (Adam, clip 1.0, dropout 0.1, mse loss, per-token stop at "
        "mse < tolerance); recipes 001 (3 epochs, lr 1e-4, max 50 it, warmup 0) and 004 (5 epochs, max 200 it, "
        "warmup 10). 'During training' numbers are the final epoch's, as the notes report them.",
        "The embedding of a trained model holds only the rows of the ids it trains on (newllm/reproduce/compact.py): "
        "with Adam an unused row gets zero gradient and is never changed, so this is the full-vocabulary training up "
        "to float summation order, at a fraction of the cost.",
        "Token ids: 000/001 use 100, 200, ..., 1000 (and the stride min(100, (V-1)//N) for 512); 002 uses 0..N-1 as "
        f"the note states. Model: 2-layer Sequential ((2,)) and Layer-wise ((1, 1)), dims {cfg.embed_dim}/"
        f"{cfg.context_dim}/{cfg.hidden_dim}, vocabulary {cfg.vocab_size}, init N(0, {cfg.init_std:g}²), dropout "
        f"{cfg.dropout:g}; one model per seed (seed = weight-init seed = dropout seed).",
        "Spread over seeds is the sample standard deviation; timings are not part of the results (report.json 'timing').",
    ]
