"""``newllm recipes``: the Phase 1 recipe benchmark (docs/recipes.md), report in reports/recipes/."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import common

NAME = "recipes"
HELP = "benchmark every Phase 1 recipe x architecture on held-out dialogue (contraction vs information)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help="12 conversations, D = 32, 1 seed, 3 epochs per recipe (about 3 min on 2 cores)",
    )
    p.add_argument(
        "--out",
        default="reports/recipes",
        help="directory for report.md, report.json and pareto.png (default %(default)s)",
    )
    p.add_argument(
        "--full-dim",
        type=int,
        default=None,
        help="re-measure the best recipe at this dim (default: 256 for the full run, none with --quick)",
    )
    p.add_argument(
        "--json", action="store_true", help="print report.json's summary (records' goals) on stdout"
    )


def run(args: argparse.Namespace) -> int:
    from ..recipes.bench import FULL, QUICK, note, run_benchmark
    from ..recipes.report import verdicts, write

    if args.full_dim is not None and args.full_dim < 1:
        raise ValueError(f"--full-dim must be a positive integer, got {args.full_dim}")
    w = QUICK if args.quick else FULL
    full_dim = args.full_dim if args.full_dim is not None else (None if args.quick else 256)
    report = run_benchmark(w, full_dim=full_dim)
    paths = write(report, Path(args.out), verdicts(report))
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
