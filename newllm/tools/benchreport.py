"""Benchmark JSON (pytest-benchmark, from ``bench/``) -> markdown tables and a PNG plot.

Entries are told apart by ``extra_info["kind"]``: ``iterations``, ``throughput``, ``loop_speedup``,
``phase1_time_to_95``; entries of other kinds are ignored.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..matrix import ARCHITECTURES

KINDS = ("iterations", "throughput", "loop_speedup", "phase1_time_to_95")
ARCH_ORDER = tuple(ARCHITECTURES)


def load_entries(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """``extra_info`` of every benchmark (of a known kind) in the given files, with the file's timing stats."""
    out = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
            benches = data["benchmarks"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{str(path)!r} is not a pytest-benchmark JSON file: {exc}") from None
        for b in benches:
            extra = dict(b.get("extra_info", {}))
            if extra.get("kind") in KINDS:
                extra["name"] = b.get("name")
                extra["stats_min_s"] = (b.get("stats") or {}).get("min")
                out.append(extra)
    return out


def _arch_key(e: dict[str, Any]) -> tuple:
    a = e.get("arch", "")
    return (ARCH_ORDER.index(a) if a in ARCH_ORDER else len(ARCH_ORDER), a)


def rule(e: dict[str, Any]) -> str:
    """The decision rule's name (``tolerance`` in benchmark files written before the glossary)."""
    return e.get("rule", e.get("tolerance", ""))


def _order(e: dict[str, Any]) -> tuple:
    """Sort keys: untrained before trained, the seeds' rule (mse) first, Picard before Anderson."""
    return (
        ({"untrained": 0, "trained": 1}.get(e["state"], 2), e["state"]),
        (0 if rule(e).startswith("mse") else 1, rule(e)),
        ({"picard": 0, "anderson": 1}.get(e["method"], 2), e["method"]),
    )


def iterations_table(entries: Sequence[dict[str, Any]]) -> str:
    """One row per device, architecture, state, decision rule and method; one column per token count:
    ``median / p90 / max`` iterations and the convergence rate."""
    its = [e for e in entries if e.get("kind") == "iterations"]
    if not its:
        return ""
    tokens = sorted({e["tokens"] for e in its})
    rows: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for e in its:
        key = (e.get("device", "?"), *_arch_key(e), *_order(e))
        rows[key][e["tokens"]] = e["counts"]
    head = "| device | arch | state | rule | method | " + " | ".join(f"{t} tok" for t in tokens) + " |"
    lines = [head, "|" + "---|" * (5 + len(tokens))]
    for key in sorted(rows):
        dev, _, arch, (_, state), (_, tol), (_, method) = key
        cells = []
        for t in tokens:
            c = rows[key].get(t)
            cells.append(
                "–"
                if c is None
                else f"{c['median_iterations']:g} / {c['p90_iterations']:g} / {c['max_iterations']:g} · {c['rate']:.0%}"
            )
        lines.append(f"| {dev} | {arch} | {state} | {tol} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def throughput_table(entries: Sequence[dict[str, Any]]) -> str:
    rows = sorted(
        (e for e in entries if e.get("kind") == "throughput"),
        key=lambda e: (e["device"], e["dtype"], e["tokens"], _arch_key(e)),
    )
    if not rows:
        return ""
    lines = [
        "| device | dtype | arch | tokens | token-iterations/s | solve GFLOP/s | matmul-chain GFLOP/s | fraction |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in rows:
        lines.append(
            f"| {e['device']} | {e['dtype']} | {e['arch']} | {e['tokens']} | {e['token_iterations_per_s']:.3g} | "
            f"{e['solve_gflops']:.3g} | {e['roofline_gflops']:.3g} | {e['roofline_fraction']:.2f} |"
        )
    return "\n".join(lines)


def speedup_table(entries: Sequence[dict[str, Any]]) -> str:
    loop = sorted(
        (e for e in entries if e.get("kind") == "loop_speedup"), key=lambda e: (e["device"], _arch_key(e))
    )
    p1 = sorted(
        (e for e in entries if e.get("kind") == "phase1_time_to_95"),
        key=lambda e: (e["device"], _arch_key(e)),
    )
    if not loop and not p1:
        return ""
    lines = ["| comparison | device | arch | setting | ratio |", "|---|---|---|---|---|"]
    for e in loop:
        lines.append(
            f"| batched solve vs per-token loop | {e['device']} | {e['arch']} | "
            f"{e['tokens']} tokens × {e['iterations']} iterations | {e['speedup']:.1f}x |"
        )
    for e in p1:
        c = e.get("counts", {})
        lines.append(
            f"| Phase 1 time-to-95%, spec vs batched | {e['device']} | {e['arch']} | {e['tokens']} tokens, "
            f"vocab {e['vocab_size']}, epochs {c.get('spec_epochs_to_95', 0):g}/{c.get('batched_epochs_to_95', 0):g}, "
            f"optimizer steps {c.get('spec_optimizer_steps', 0):g}/{c.get('batched_optimizer_steps', 0):g} | "
            f"{e['speedup']:.1f}x |"
        )
    return "\n".join(lines)


def markdown(entries: Sequence[dict[str, Any]], title: str = "Benchmark report") -> str:
    """The full report: the three tables under headings (empty sections left out)."""
    parts = [f"# {title}"]
    for heading, table, note in (
        (
            "Iterations to converge",
            iterations_table(entries),
            "Cells: median / p90 / max iterations · convergence rate.",
        ),
        (
            "Throughput against the roofline",
            throughput_table(entries),
            "Fraction: achieved matmul GFLOP/s of the batched solve over a plain matmul chain of the same "
            "shapes, measured in the same run.",
        ),
        ("Speed ratios", speedup_table(entries), ""),
    ):
        if table:
            parts += [f"## {heading}", note, table] if note else [f"## {heading}", table]
    if len(parts) == 1:
        parts.append("No benchmark entries of a known kind.")
    return "\n\n".join(parts) + "\n"


def plot(entries: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """PNG: mean iterations vs token count per architecture (one panel per state and decision rule, solid
    Picard, dashed Anderson) and achieved vs roofline GFLOP/s per architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [e for e in entries if e.get("kind") == "iterations"]
    thr = [e for e in entries if e.get("kind") == "throughput"]
    panels = sorted(
        {(e["device"], e["state"], rule(e)) for e in its},
        key=lambda p: (p[0], _order({"state": p[1], "rule": p[2], "method": ""})),
    )
    n = len(panels) + (1 if thr else 0)
    cols = min(3, max(1, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    flat = list(axes.flat)
    colors = {a: f"C{i}" for i, a in enumerate(ARCH_ORDER)}
    for ax, (dev, state, tol) in zip(flat, panels, strict=False):
        for arch in sorted({e["arch"] for e in its}, key=lambda a: _arch_key({"arch": a})):
            for method, style in (("picard", "-"), ("anderson", "--")):
                pts = sorted(
                    (e["tokens"], e["counts"]["mean_iterations"])
                    for e in its
                    if (e["device"], e["state"], rule(e), e["arch"], e["method"])
                    == (dev, state, tol, arch, method)
                )
                if pts:
                    px, py = zip(*pts, strict=True)
                    ax.plot(px, py, style, marker="o", color=colors.get(arch), label=f"{arch} {method}")
        ax.set_xscale("log")
        ax.set_title(f"{dev} · {state} · {tol}")
        ax.set_xlabel("tokens")
        ax.set_ylabel("mean iterations (cap if not converged)")
        ax.legend(fontsize=7)
    if thr:
        ax = flat[len(panels)]
        labels = [f"{e['arch']}\n{e['device']} {e['dtype']} {e['tokens']}" for e in thr]
        xs = list(range(len(thr)))
        ax.bar([x - 0.2 for x in xs], [e["solve_gflops"] for e in thr], width=0.4, label="batched solve")
        ax.bar([x + 0.2 for x in xs], [e["roofline_gflops"] for e in thr], width=0.4, label="matmul chain")
        for x, e in zip(xs, thr, strict=True):
            ax.annotate(
                f"{e['roofline_fraction']:.2f}",
                (x - 0.2, e["solve_gflops"]),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.set_xticks(list(xs), labels, fontsize=6)
        ax.set_ylabel("GFLOP/s")
        ax.set_title("throughput vs roofline")
        ax.legend(fontsize=7)
    for ax in flat[n:]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
