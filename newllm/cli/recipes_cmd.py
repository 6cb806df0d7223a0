"""``newllm recipes``: the Phase 1 recipe benchmark (docs/recipes.md), report in reports/recipes/."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runs.jsonio import dumps
from . import args as A
from . import common

NAME = "recipes"
HELP = "benchmark every Phase 1 recipe x architecture on held-out dialogue (contraction vs information)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help="4 recipes (untrained, seeds, sigma-hinge+vc, the injection variant), 8 conversations, D = 16, "
        "5 epochs, 1 seed",
    )
    p.add_argument(
        "--out",
        type=A.out_dir,
        default="reports/recipes",
        help="directory for report.md, report.json and pareto.png (default %(default)s)",
    )
    p.add_argument(
        "--full-dim",
        type=A.integer(2, 4096),
        default=None,
        help="also re-measure the best recipe at this dim, seed 0 (default: none)",
    )
    p.add_argument(
        "--recipes", type=_names, help="comma-separated subset of the recipes (default: the workload's)"
    )
    p.add_argument(
        "--archs", type=_names, help="comma-separated architectures (default: sequential,layerwise)"
    )
    p.add_argument(
        "--json", action="store_true", help="print report.json's summary (records' goals) on stdout"
    )


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def run(args: argparse.Namespace) -> int:
    from ..recipes.bench import CONFIRM_SEEDS, FULL, QUICK, note, run_benchmark
    from ..recipes.report import verdicts, write

    w = _select(QUICK if args.quick else FULL, args)
    confirm = () if args.quick else CONFIRM_SEEDS
    out = Path(args.out)
    partial = out / "partial.json"

    def save(records: list) -> None:  # what a run cut short leaves behind
        out.mkdir(parents=True, exist_ok=True)
        partial.write_text(dumps({"workload": w.name, "records": records}, indent=1) + "\n")

    report = run_benchmark(w, confirm_seeds=confirm, full_dim=args.full_dim, on_record=save)
    partial.unlink(missing_ok=True)
    paths = write(report, out, verdicts(report))
    note("wrote " + ", ".join(str(p) for p in paths))
    if args.json:
        common.print_json(
            {
                "best": report["best"],
                "records": [
                    {"recipe": r["recipe"], "arch": r["arch"], "goals": r["goals"]} for r in report["records"]
                ],
                "out": [str(p) for p in paths],
                "seconds": report["seconds"],
            }
        )
    else:
        b = report["best"]
        print(
            f"best recipe: {b['recipe']} on {b['arch']} ({b['met_count']}/5 goal-1 criteria); report {paths[1]}"
        )
    return 0


def _select(w, args: argparse.Namespace):
    """The workload restricted to ``--recipes`` / ``--archs`` (each name checked)."""
    from dataclasses import replace

    from ..matrix import ARCHITECTURES, BENCHMARK_RECIPES

    for name in args.recipes or ():
        if name not in ("untrained", *BENCHMARK_RECIPES):
            valid = ", ".join(("untrained", *BENCHMARK_RECIPES))
            raise ValueError(f"unknown recipe {name!r} in --recipes; expected some of {valid}")
    for arch in args.archs or ():
        if arch not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {arch!r} in --archs; expected some of {', '.join(ARCHITECTURES)}"
            )
    return replace(w, recipes=tuple(args.recipes or w.recipes), archs=tuple(args.archs or w.archs))
