"""``report.md`` from an evaluated reproduction: the prose lives in ``templates/`` (string.Template
files), this module fills in numbers and tables.

Layout: a one-page summary (counts and the findings that matter, each linking to its rows), all
verdicts, the notes' claims per condition, what the notes could not see (figures and tables), the
notes' internal consistency, the claims judged not measurable, and the method.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from .claims import ClaimsData
from .measure import conditions_text
from .verdicts import FAILS, HOLDS, INCONCLUSIVE, NOT_MEASURED, QUESTIONS, SINGLE_RUN, TYPICAL, describe_slack

STATUS_ORDER = (HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED)
MARK = {HOLDS: "✅", FAILS: "❌", INCONCLUSIVE: "❔", NOT_MEASURED: "·"}
QUESTION_NAME = {SINGLE_RUN: "single run", TYPICAL: "typical"}


@cache
def template(name: str) -> Template:
    """``templates/<name>`` of this package as a :class:`string.Template`."""
    text = resources.files("newllm.reproduce").joinpath("templates", name).read_text(encoding="utf-8")
    return Template(text)


def fill(name: str, **values: Any) -> str:
    """A template with every placeholder filled (KeyError names a missing one)."""
    return template(name).substitute(**{k: str(v) for k, v in values.items()}).rstrip("\n")


def findings_spec() -> list[dict[str, Any]]:
    text = (
        resources.files("newllm.reproduce").joinpath("templates", "findings.json").read_text(encoding="utf-8")
    )
    return json.loads(text)


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.3g}"
        return f"{x:.{digits}g}"
    if isinstance(x, list):
        return "[" + ", ".join(fmt(v) for v in x) + "]"
    return str(x)


def counts(claims: list[dict[str, Any]]) -> dict[str, int]:
    """Primary verdicts by status, plus ``trivial``, ``holds_only``, ``fails_only`` and per question."""
    c = Counter(x["status"] for x in claims)
    out: dict[str, int] = {s: c.get(s, 0) for s in STATUS_ORDER}
    out["trivial"] = sum(bool(x.get("trivial")) for x in claims)
    out["holds_only"] = sum(x["status"] != HOLDS and bool(x.get("holds_under")) for x in claims)
    out["fails_only"] = sum(x["status"] != FAILS and bool(x.get("fails_under")) for x in claims)
    for q in QUESTIONS:
        for s in STATUS_ORDER:
            out[f"{q}:{s}"] = sum(x["question"] == q and x["status"] == s for x in claims)
    return out


def anchor(claim_id: str) -> str:
    return "c-" + claim_id.replace(".", "-")


def _esc(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _span(iv: dict[str, Any] | None) -> str:
    return "–" if not iv else f"[{fmt(iv['lower'])}, {fmt(iv['upper'])}]"


def claimed_text(c: dict[str, Any]) -> str:
    if c["test"] in ("less", "greater", "equal"):
        return {"less": "a < b", "greater": "a > b", "equal": "a = b"}[c["test"]]
    sym = {"approx": "≈ ", "at_least": "≥ ", "below": "< ", "above": "> ", "range": "in ", "ratio": "a/b ≈ "}
    return sym[c["test"]] + fmt(c["claimed"])


def write_markdown(path: Path, report: dict[str, Any], data: ClaimsData, figures: dict[str, str]) -> Path:
    claims = report["claims"]
    text = fill(
        "report.md",
        run_line=_run_line(report),
        summary=_summary(report),
        findings=_findings(claims),
        rules=fill(
            "rules.md", slack=", ".join(f"{q} {describe_slack(v)}" for q, v in report["slack"].items())
        ),
        verdict_table=_verdict_table(claims),
        how_to_read=fill("how_to_read.md"),
        note_tables=_note_tables(claims, data),
        beyond=_beyond(report, figures),
        consistency=_consistency(report),
        unmeasurable=_unmeasurable(report),
        method=_method(report),
    )
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _run_line(report: dict[str, Any]) -> str:
    p = report["plan"]
    return fill(
        "run_line.md",
        quick_flag=" --quick" if p["quick"] else "",
        mode="quick" if p["quick"] else "full",
        untrained_seeds=len(p["seeds"]),
        trained_seeds=len(p["trained_seeds"]),
        untrained_list="seeds " + _seed_list(p["seeds"]),
        trained_list="seeds " + _seed_list(p["trained_seeds"]),
        tasks=report["tasks"],
        dims=p["dims"],
        vocab=p["vocab"],
        threads=p["threads"],
        quick_note=_quick_note(p),
    )


def _quick_note(p: dict[str, Any]) -> str:
    """The quick plan's warning under the run line (empty for the full plan)."""
    if not p["quick"]:
        return ""
    lists = {k: ", ".join(map(str, p[k])) for k in ("untrained_counts", "scaling_counts", "spec_counts")}
    return "\n\n" + fill("quick_note.md", **lists)


def _summary(report: dict[str, Any]) -> str:
    c, claims = report["counts"], report["claims"]
    rows = []
    for s in STATUS_ORDER:
        per_q = [c[f"{q}:{s}"] for q in QUESTIONS]
        rows.append(f"| {MARK[s]} {s} | " + " | ".join(str(n) for n in per_q) + f" | {c[s]} |")
    return fill(
        "summary.md",
        n_claims=len(claims),
        holds=c[HOLDS],
        trivial=c["trivial"],
        fails=c[FAILS],
        inconclusive=c[INCONCLUSIVE],
        not_measured=c[NOT_MEASURED],
        holds_only=c["holds_only"],
        fails_only=c["fails_only"],
        single_run=sum(x["question"] == SINGLE_RUN for x in claims),
        typical=sum(x["question"] == TYPICAL for x in claims),
        inconsistent=sum(k["status"] == "inconsistent" for k in report["consistency"]),
        consistency_checks=len(report["consistency"]),
        unmeasurable=len(report["unmeasured"]),
        count_rows="\n".join(rows),
    )


def _own_numbers(c: dict[str, Any]) -> str:
    """The own variants' mean, interval and (single run) range, one clause each."""
    parts = []
    for v in c["variants"]:
        if not v["own"] or v["verdict"] == NOT_MEASURED:
            continue
        m = v["measured"].get("stat") or v["measured"].get("difference") or {}
        what = "a − b" if "difference" in v["measured"] else "mean"
        s = f"{what} {fmt(m.get('mean'))} {_span(v['interval'])}"
        if c["question"] == SINGLE_RUN:
            s += f", one seed in {_span(v['prediction'])}"
        parts.append(f"{s} (n={v['n_seeds']})")
    return "; ".join(parts) or "not measured"


def _findings(claims: list[dict[str, Any]]) -> str:
    by_id = {c["id"]: c for c in claims}
    out = []
    for f in findings_spec():
        out.append(f"**{f['title']}**")
        out.append("")
        for cid in f["claims"]:
            c = by_id.get(cid)
            if c is None:
                continue
            out.append(
                f"- [{_esc(c['text'])}](#{anchor(cid)}) ({c['note']}): **{_esc(c['verdict'])}** "
                f"— {QUESTION_NAME[c['question']]}; {_own_numbers(c)}; claimed {_esc(claimed_text(c))}."
            )
        out.append("")
    return "\n".join(out).rstrip()


def _verdict_table(claims: list[dict[str, Any]]) -> str:
    out = ["| | Claim | Note § section | Question | Claimed | Verdict |", "|---|---|---|---|---|---|"]
    for c in claims:
        out.append(
            f"| {MARK[c['status']]} | [{_esc(c['text'])}](#{anchor(c['id'])}) | {c['note']} § {_esc(c['section'])} "
            f"| {QUESTION_NAME[c['question']]} | {_esc(claimed_text(c))} | {_esc(c['verdict'])} |"
        )
    return "\n".join(out)


def _variant_row(c: dict[str, Any], v: dict[str, Any], first: bool, control: bool = False) -> str:
    m = v["measured"].get("stat") or v["measured"].get("difference") or {}
    label = ("control: " if control else "") + ("★ " if v["own"] else "") + _esc(v["label"])
    cond = _esc(conditions_text(v["conditions"]))
    ans = v.get("answers", {})
    claim_cell = ""
    if first:
        claim_cell = f'<a id="{anchor(c["id"])}"></a>{_esc(c["text"])}'
        if c.get("reading"):
            claim_cell += f"<br><sub>reading: {_esc(c['reading'])}</sub>"
        if c["also"]:
            claim_cell += "<br><sub>also in " + "; ".join(f"{n} § {_esc(s)}" for n, s in c["also"]) + "</sub>"
    cells = [
        claim_cell,
        _esc(claimed_text(c)) if first else "",
        f"{label}<br><sub>{cond}</sub>",
        str(v["n_seeds"]),
        f"{fmt(m.get('mean'))} {_span(v['interval'])}" if m else "–",
        _span(v["prediction"]),
        f"{MARK.get(ans.get(TYPICAL, {}).get('status'), '·')}",
        f"{MARK.get(ans.get(SINGLE_RUN, {}).get('status'), '·')}",
        f"**{_esc(c['verdict'])}** ({QUESTION_NAME[c['question']]})" if first else "",
    ]
    return "| " + " | ".join(cells) + " |"


def _note_tables(claims: list[dict[str, Any]], data: ClaimsData) -> str:
    head = (
        "| Claim | Claimed | Condition | n | mean [95% interval] | 95% range, one seed | typical | single run "
        "| Verdict |\n|---|---|---|---|---|---|---|---|---|"
    )
    out: list[str] = []
    for note, info in data.notes.items():
        mine = [c for c in claims if c["note"] == note]
        if not mine:
            continue
        out += ["", f"### {note}: {info['title']} (`{info['file']}`)"]
        sections = list(dict.fromkeys(c["section"] for c in mine))
        for sec in sections:
            out += ["", f"#### {sec}", "", head]
            for c in (x for x in mine if x["section"] == sec):
                for i, v in enumerate(c["variants"]):
                    out.append(_variant_row(c, v, i == 0))
                if c.get("control"):
                    out.append(_variant_row(c, c["control"], False, control=True))
    return "\n".join(out).strip()


def _consistency(report: dict[str, Any]) -> str:
    out = ["| Check | Note § section | Result | Detail |", "|---|---|---|---|"]
    for k in report["consistency"]:
        out.append(
            f"| {_esc(k['text'])} | {k['note']} § {_esc(k['section'])} | {k['status']} | {_esc(k['detail'])} |"
        )
    return "\n".join(out)


def _unmeasurable(report: dict[str, Any]) -> str:
    out = ["| Note § section | Statement | Why not measured |", "|---|---|---|"]
    for u in report["unmeasured"]:
        out.append(
            f"| {u['note']} § {_esc(u['section'])} | {_esc(u.get('text', '–'))} | {_esc(u['reason'])} |"
        )
    return "\n".join(out)


def _method(report: dict[str, Any]) -> str:
    p, m = report["plan"], report["method"]
    out = fill(
        "method.md",
        untrained_seeds=len(p["seeds"]),
        untrained_seed_list=_seed_list(p["seeds"]),
        trained_seeds=len(p["trained_seeds"]),
        trained_seed_list=_seed_list(p["trained_seeds"]),
        rules=m["rules"],
        probe_iterations=m["probe_iterations"],
        dialogue=m["dialogue"],
    )
    t = report.get("timing")
    if t:
        out += (
            f"\n- Timing: {report['tasks']} experiments, {t['reused_tasks']} reused from the output directory; "
            f"{t['seconds']:.0f} s wall clock."
        )
    return out


def _seed_list(seeds: list[int]) -> str:
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 3:
        return f"{seeds[0]}..{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def _figure(figures: dict[str, str], name: str, alt: str) -> str:
    if not figures:
        return '*No figures: matplotlib is not installed (`pip install -e ".[plot]"`).*'
    return f"![{alt}]({figures[name]})" if name in figures else ""


def _beyond(report: dict[str, Any], figures: dict[str, str]) -> str:
    b, a, p = report["beyond"], report["arithmetic"], report["plan"]
    return fill(
        "beyond.md",
        fig_rate_vs_tokens=_figure(figures, "rate_vs_tokens", "rate vs token count"),
        fig_rate_vs_threshold=_figure(figures, "rate_vs_threshold", "rate vs threshold"),
        fig_residual_traces=_figure(figures, "residual_traces", "residual traces"),
        fig_spectra=_figure(figures, "spectra", "Jacobian spectra"),
        untrained_seeds=len(p["seeds"]),
        trained_seeds=len(p["trained_seeds"]),
        rate_vs_tokens=_rate_vs_tokens_table(b["rate_vs_tokens"]),
        rate_vs_threshold=_threshold_table(b["rate_vs_threshold"]),
        rel_l2=fmt(a["rel_of_l2_0.01"]),
        rel_mse=fmt(a["rel_of_mse_0.01"]),
        l2_mse=fmt(a["l2_at_mse_0.01"]),
        trace_seed=b.get("trace_seed", "–"),
        spectrum_token=b.get("spectrum_token", "–"),
        contraction_tokens=p["contraction_tokens"],
        contraction=_contraction_table(b["contraction"]),
        collapse=_collapse_table(b["collapse"]),
        one_iteration=_one_iteration_table(b["one_iteration"]),
    )


def _rate_vs_tokens_table(curves: dict[str, list[dict[str, Any]]]) -> str:
    out = ["| model | points: tokens: mean [95% interval] |", "|---|---|"]
    for state in ("untrained", "trained"):
        for c in curves.get(state, []):
            pts = ", ".join(
                f"{n}: {fmt(r, 3)} [{fmt(lo, 3)}, {fmt(hi, 3)}]"
                for n, r, lo, hi in zip(c["tokens"], c["rate"], c["lower"], c["upper"], strict=True)
            )
            out.append(f"| {state}, {_esc(c['label'])} | {pts} |")
    return "\n".join(out)


def _threshold_table(curves: list[dict[str, Any]]) -> str:
    if not curves:
        return ""
    grid = curves[0]["grid"]
    picks = [i for i, g in enumerate(grid) if abs(round(math.log10(g)) - math.log10(g)) < 1e-9]
    out = [
        "| model | " + " | ".join(f"rel < {fmt(grid[i])}" for i in picks) + " |",
        "|---|" + "---|" * len(picks),
    ]
    for c in curves:
        out.append(
            f"| {c['arch']}, {c['state']}, {c['tokens']} tokens ({c['seeds']} seeds) | "
            + " | ".join(fmt(c["rate"][i], 3) for i in picks)
            + " |"
        )
    return "\n".join(out)


def _contraction_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| model | arch | seeds | sigma_max mean | sigma_max max | share sigma<1 | rho mean | rho max | share rho<1 "
        "| mse residual at the point |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['source']} | {r['arch']} | {r['seeds']} | {fmt(r['sigma_max_mean'])} | {fmt(r['sigma_max_max'])} | "
            f"{fmt(r['sigma_below_1'], 2)} | {fmt(r['rho_mean'])} | {fmt(r['rho_max'])} | {fmt(r['rho_below_1'], 2)} | "
            f"{fmt(r['last_mse_mean'])} |"
        )
    return "\n".join(out)


def _collapse_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| model | arch | seeds | context rms | min rms f(0) | mean rms f(0) | min pre-LN var at c=0 | last LN gain "
        "(mean) | effective rank | max cosine | forget gate | input gate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['source']} | {r['arch']} | {r['seeds']} | {fmt(r['context_rms'])} | {fmt(r['rms_f0_min'])} | "
            f"{fmt(r['rms_f0_mean'])} | {fmt(r['pre_ln_var_f0_min'])} | {fmt(r['ln_gain_last_mean'])} | "
            f"{fmt(r['effective_rank'])} | {fmt(r['max_cosine'])} | {fmt(r['forget_gate_mean'], 3)} | "
            f"{fmt(r['input_gate_mean'], 3)} |"
        )
    return "\n".join(out)


def _one_iteration_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| model | arch | tokens at iteration 1 | stays below one step later | mse one step later | min rms f(0) "
        "| min pre-LN var at c=0 (LN eps) | last LN gain | rms f(0) < 0.1 predicts it |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['source']} | {r['arch']} | {r['converged_at_1']}/{r['tokens']} | {fmt(r['stays_converged'], 3)} | "
            f"{fmt(r['next_mse_after_convergence'])} | {fmt(r['rms_f0_min'])} | {fmt(r['pre_ln_var_f0_min'])} "
            f"({fmt(r['ln_eps'])}) | {fmt(r['ln_gain_last_mean'])} | {'agrees' if r['criterion_agrees'] else 'DISAGREES'} |"
        )
    return "\n".join(out)
