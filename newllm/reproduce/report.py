"""``report.md`` (tables, embedded PNGs) and ``report.json`` from an evaluated reproduction."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from .claims import ClaimsData
from .measure import conditions_text
from .verdicts import FAILS, HOLDS, HOLDS_ONLY, INCONCLUSIVE, NOT_MEASURED

STATUS_ORDER = (HOLDS, HOLDS_ONLY, FAILS, INCONCLUSIVE, NOT_MEASURED)
MARK = {HOLDS: "✅", HOLDS_ONLY: "⚠️", FAILS: "❌", INCONCLUSIVE: "❔", NOT_MEASURED: "·"}


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.3g}"
        return f"{x:.{digits}g}"
    if isinstance(x, list):
        return "[" + ", ".join(fmt(v) for v in x) + "]"
    return str(x)


def measured_text(m: dict[str, Any]) -> str:
    """``mean ± std [min, max] (n=3)``; paired: ``a: ... / b: ...``; ratio: the ratio's stat."""
    if not m:
        return "not measured"
    if "ratio" in m and m["ratio"]:
        return "ratio " + _stat_text(m["ratio"])
    if "stat" in m:
        return _stat_text(m["stat"])
    return f"a {_stat_text(m['a'])} · b {_stat_text(m['b'])}"


def _stat_text(s: dict[str, Any]) -> str:
    if s["n"] == 1:
        return f"{fmt(s['mean'])} (n=1)"
    return f"{fmt(s['mean'])} ± {fmt(s['std'], 2)} [{fmt(s['min'])}, {fmt(s['max'])}] (n={s['n']})"


def claimed_text(c: dict[str, Any]) -> str:
    if c["test"] in ("less", "greater", "equal"):
        return {"less": "a < b", "greater": "a > b", "equal": "a = b"}[c["test"]]
    sym = {"approx": "≈ ", "at_least": "≥ ", "below": "< ", "above": "> ", "range": "in ", "ratio": "a/b ≈ "}[
        c["test"]
    ]
    return sym + fmt(c["claimed"])


def counts(claims: list[dict[str, Any]]) -> dict[str, int]:
    c = Counter(x["status"] for x in claims)
    return {s: c.get(s, 0) for s in STATUS_ORDER}


def write_markdown(path: Path, report: dict[str, Any], data: ClaimsData, figures: dict[str, str]) -> Path:
    lines: list[str] = []
    add = lines.append
    plan = report["plan"]
    claims = report["claims"]
    add("# Seed-note reproduction: claimed vs measured")
    add("")
    mode = "quick" if plan["quick"] else "full"
    add(
        f"`newllm reproduce{' --quick' if plan['quick'] else ''}` ({mode} plan): seeds {fmt(plan['seeds'])}, "
        f"{report['tasks']} tasks, model dims {plan['dims']}, vocabulary {plan['vocab']}, torch threads {plan['threads']}. "
        "Every verdict below is computed from the numbers by `newllm/reproduce/verdicts.py`; the claims are data "
        "(`newllm/reproduce/claims.json`)."
    )
    add("")
    cts = report["counts"]
    add(
        f"**{len(claims)} claims:** {cts[HOLDS]} hold, {cts[HOLDS_ONLY]} hold only under some conditions, "
        f"{cts[FAILS]} do not hold, {cts[INCONCLUSIVE]} inconclusive, {cts[NOT_MEASURED]} not measured in this run. "
        f"**Internal consistency of the notes:** {sum(k['status'] == 'inconsistent' for k in report['consistency'])} of "
        f"{len(report['consistency'])} checks fail."
    )
    add("")
    add("## Verdicts")
    add("")
    add("| | Claim | Note § section | Claimed | Verdict |")
    add("|---|---|---|---|---|")
    for c in claims:
        add(
            f"| {MARK[c['status']]} | {_esc(c['text'])} | {c['note']} § {_esc(c['section'])} | {_esc(claimed_text(c))} | {_esc(c['verdict'])} |"
        )
    add("")
    add(_rules_text(report))
    add("")
    add("## The notes' tables, claimed vs measured")
    for note, info in data.notes.items():
        mine = [c for c in claims if c["note"] == note]
        if not mine:
            continue
        add("")
        add(f"### {note}: {info['title']} (`{info['file']}`)")
        sections: list[str] = []
        for c in mine:
            if c["section"] not in sections:
                sections.append(c["section"])
        for sec in sections:
            add("")
            add(f"#### {sec}")
            add("")
            add(
                "| Claim | Claimed | Conditions | Measured: mean ± std [min, max] over seeds | Variant | Claim verdict |"
            )
            add("|---|---|---|---|---|---|")
            for c in (x for x in mine if x["section"] == sec):
                for i, v in enumerate(c["variants"]):
                    first = i == 0
                    add(
                        "| "
                        + " | ".join(
                            [
                                _esc(c["text"])
                                + (f" <br>*also in {_also(c)}*" if first and c["also"] else "")
                                if first
                                else "",
                                _esc(claimed_text(c)) if first else "",
                                _esc(v["label"])
                                + "<br><sub>"
                                + _esc(conditions_text(v["conditions"]))
                                + "</sub>",
                                _esc(measured_text(v["measured"])),
                                f"{MARK.get(v['verdict'], '')} {v['verdict']}: {_esc(v['detail'])}",
                                f"**{_esc(c['verdict'])}**" if first else "",
                            ]
                        )
                        + " |"
                    )
    add("")
    _beyond(add, report, figures)
    add("")
    add("## Internal consistency of the notes")
    add("")
    add("Checks of each note's numbers against each other (no measurement involved).")
    add("")
    add("| Check | Note § section | Result | Detail |")
    add("|---|---|---|---|")
    for k in report["consistency"]:
        add(
            f"| {_esc(k['text'])} | {k['note']} § {_esc(k['section'])} | {k['status']} | {_esc(k['detail'])} |"
        )
    add("")
    add("## Not reproduced")
    add("")
    add("| Note § section | Why |")
    add("|---|---|")
    for u in report["unmeasured"]:
        add(f"| {u['note']} § {_esc(u['section'])} | {_esc(u['reason'])} |")
    add("")
    add("## Method")
    add("")
    for line in report["method"]:
        add(f"- {line}")
    t = report.get("timing")
    if t:
        add(
            f"- Timing (not part of the results): {report['tasks']} experiments, {t['reused_tasks']} reused from "
            f"the output directory; experiment time {t['task_seconds']:.0f} s as measured when each ran."
        )
    add("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _rules_text(report: dict[str, Any]) -> str:
    t = report["tolerances"]
    tol = ", ".join(f"{q} {_tol(v)}" for q, v in t.items() if v)
    return (
        "Verdict rules: *approx* holds when the seed mean is within tolerance, does not hold when no seed is, "
        "else inconclusive; per-seed tests (≥, <, >, range, a < b, a > b, a = b) hold when every seed passes, "
        "do not hold when none does. A claim measured under several conditions *holds only under* those "
        f"whose variants hold. Tolerances: {tol}."
    )


def _tol(v: dict[str, float]) -> str:
    if "factor" in v:
        return f"×/÷ {v['factor']:g}"
    parts = ([f"±{v['abs']:g}"] if "abs" in v else []) + ([f"±{100 * v['rel']:g}%"] if "rel" in v else [])
    return " or ".join(parts)


def _also(c: dict[str, Any]) -> str:
    return "; ".join(f"{n} § {_esc(s)}" for n, s in c["also"])


def _esc(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _beyond(add, report: dict[str, Any], figures: dict[str, str]) -> None:
    b = report["beyond"]
    add("## Beyond the notes")
    add("")
    if not figures:
        add('*No figures: matplotlib is not installed (`pip install -e ".[plot]"`).*')
        add("")
    add("### Convergence rate vs token count")
    add("")
    if "rate_vs_tokens" in figures:
        add(f"![rate vs token count]({figures['rate_vs_tokens']})")
        add("")
    for state in ("untrained", "trained"):
        for c in b["rate_vs_tokens"].get(state, []):
            pts = ", ".join(f"{n}: {fmt(r, 3)}" for n, r in zip(c["tokens"], c["rate"], strict=True))
            add(f"- {state}, {c['label']}: {pts}")
    add("")
    add("### Convergence rate vs tolerance (rel units)")
    add("")
    add(
        "`rel = ||f(c) - c|| / ||f(c)||`; a LayerNorm'd context has `||f(c)|| ≈ sqrt(D)`, so the notes' `l2 < 0.01` "
        f"is about rel < {fmt(report['arithmetic']['rel_of_l2_0.01'])} and `mse < 0.01` about rel < "
        f"{fmt(report['arithmetic']['rel_of_mse_0.01'])} (eval, warmup 0, 200 iterations)."
    )
    add("")
    if "rate_vs_threshold" in figures:
        add(f"![rate vs threshold]({figures['rate_vs_threshold']})")
        add("")
    curves = b["rate_vs_threshold"]
    if curves:
        grid = curves[0]["grid"]
        picks = [i for i, g in enumerate(grid) if abs(round(_log10(g)) - _log10(g)) < 1e-9]
        add("| model | " + " | ".join(f"rel < {fmt(grid[i])}" for i in picks) + " |")
        add("|---|" + "---|" * len(picks))
        for c in curves:
            add(
                f"| {c['arch']}, {c['state']}, {c['tokens']} tokens ({c['seeds']} seeds) | "
                + " | ".join(fmt(c["rate"][i], 3) for i in picks)
                + " |"
            )
    add("")
    add("### Residual traces")
    add("")
    add(
        "First seed, first three of the 10 tokens, eval mode, 200 plain iterations from zeros (l2 residual, log scale)."
    )
    add("")
    if "residual_traces" in figures:
        add(f"![residual traces]({figures['residual_traces']})")
        add("")
    add("### Contraction at the fixed points")
    add("")
    add(
        "Exact Jacobian `J = d step(e, c) / d c` (torch.func.jacrev, eval mode) at the last of 200 iterates, for the "
        f"first {report['plan']['contraction_tokens']} tokens of each model. sigma_max is the local Lipschitz constant "
        "(the notes' k); rho, the spectral radius, decides whether plain iteration converges locally. "
        "Means over seeds, max = the largest over seeds and tokens."
    )
    add("")
    if "spectra" in figures:
        add(f"![Jacobian spectra]({figures['spectra']})")
        add("")
    add(
        "| model | arch | seeds | sigma_max mean | sigma_max max | share sigma<1 | rho mean | rho max | share rho<1 | mse residual at the point |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|")
    for r in b["contraction"]:
        add(
            f"| {r['source']} | {r['arch']} | {r['seeds']} | {fmt(r['sigma_max_mean'])} | {fmt(r['sigma_max_max'])} | "
            f"{fmt(r['sigma_below_1'], 2)} | {fmt(r['rho_mean'])} | {fmt(r['rho_max'])} | {fmt(r['rho_below_1'], 2)} | "
            f"{fmt(r['last_mse_mean'])} |"
        )
    add("")
    add("### Collapse diagnostics and the 'converges in 1 iteration' check")
    add("")
    add(
        "At the fixed points (eval; for the models judged by a direct solve, at the judged contexts). `rms f(0)` is "
        "the RMS of the first update from the zero context: `mse(f(0), 0) = rms(f(0))²`, so a token is judged "
        "converged at iteration 1 under mse < 0.01 exactly when rms(f(0)) < 0.1. The output of a LayerNorm is that "
        "small only when its gain shrinks or when the variance of its input falls below its `eps` "
        "(`pre-LN var at c=0`)."
    )
    add("")
    add(
        "| model | arch | seeds | context rms | min rms f(0) | mean rms f(0) | min pre-LN var at c=0 | last LN gain (mean) "
        "| effective rank | max cosine | forget gate | input gate |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in b["collapse"]:
        add(
            f"| {r['source']} | {r['arch']} | {r['seeds']} | {fmt(r['context_rms'])} | {fmt(r['rms_f0_min'])} | "
            f"{fmt(r['rms_f0_mean'])} | {fmt(r['pre_ln_var_f0_min'])} | {fmt(r['ln_gain_last_mean'])} | "
            f"{fmt(r['effective_rank'])} | {fmt(r['max_cosine'])} | {fmt(r['forget_gate_mean'], 3)} | "
            f"{fmt(r['input_gate_mean'], 3)} |"
        )
    add("")
    add("**Converged at iteration 1?** Trained models, eval, mse < 0.01 from zeros, summed over seeds.")
    add("")
    add(
        "| model | arch | tokens at iteration 1 | converged tokens still < 0.01 one step later | mse one step later "
        "| min rms f(0) | min pre-LN var at c=0 (LN eps) | last LN gain | rms f(0) < 0.1 predicts it |"
    )
    add("|---|---|---|---|---|---|---|---|---|")
    for r in b["one_iteration"]:
        add(
            f"| {r['source']} | {r['arch']} | {r['converged_at_1']}/{r['tokens']} | {fmt(r['stays_converged'], 3)} | "
            f"{fmt(r['next_mse_after_convergence'])} | {fmt(r['rms_f0_min'])} | {fmt(r['pre_ln_var_f0_min'])} "
            f"({fmt(r['ln_eps'])}) | {fmt(r['ln_gain_last_mean'])} | {'agrees' if r['criterion_agrees'] else 'DISAGREES'} |"
        )


def _log10(x: float) -> float:
    import math

    return math.log10(x)
