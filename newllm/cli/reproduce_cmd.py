"""``newllm reproduce``: regenerate the seed notes' tables, claimed vs measured, into report.md/.json."""

from __future__ import annotations

import argparse

from ..matrix.models import DEFAULT
from ..reproduce import full_plan, quick_plan, run_reproduction
from ..reproduce.report import STATUS_ORDER
from . import common

NAME = "reproduce"
HELP = "rerun every numeric table of the seed notes and judge each claim (report.md, report.json)"

#: ``--tiny``: a test-only model size (hidden from --help).
TINY_MODEL = {"embed_dim": 16, "context_dim": 16, "hidden_dim": 16, "vocab_size": 1100}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help="3 untrained and 2 trained seeds, fewer token counts (about a minute)",
    )
    p.add_argument(
        "--seeds",
        type=common.int_list,
        help="comma-separated seeds of the untrained experiments (default 0..19; with --quick: 0,1,2)",
    )
    p.add_argument(
        "--trained-seeds",
        type=common.int_list,
        help="seeds of the trained experiments (default: the first 5 of --seeds, 0..4; with --quick: 2, 0,1)",
    )
    p.add_argument(
        "--out", help="output directory (default runs/reproduce, or runs/reproduce-quick with --quick)"
    )
    p.add_argument("--resume", action="store_true", help="reuse finished experiments stored in --out")
    p.add_argument("--threads", type=int, default=1, help="torch threads per experiment (default 1)")
    p.add_argument(
        "--jobs", type=int, default=1, help="worker processes running experiments in parallel (default 1)"
    )
    p.add_argument(
        "--model-cache",
        metavar="DIR",
        help="trained models, kept per code version (default $NEWLLM_CACHE_DIR or ~/.cache/newllm/models)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object (paths, counts, verdicts)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    kw = {"threads": args.threads}
    if args.tiny:
        kw["model"] = dict(TINY_MODEL)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be a positive integer, got {args.jobs}")
    plan = (quick_plan if args.quick else full_plan)(args.seeds, args.trained_seeds, **kw)
    out = args.out or ("runs/reproduce-quick" if args.quick else "runs/reproduce")
    cache = args.model_cache if args.model_cache else DEFAULT
    rep = run_reproduction(
        plan, out, resume=args.resume, progress=not args.quiet, cache=cache, jobs=args.jobs
    )
    r = rep.report
    if args.json:
        common.print_json(
            {
                "report": str(rep.markdown),
                "json": str(rep.json),
                "quick": plan.quick,
                "seeds": list(plan.seeds),
                "trained_seeds": list(plan.seeds_trained),
                "tasks": r["tasks"],
                "reused_tasks": r["timing"]["reused_tasks"],
                "counts": r["counts"],
                "verdicts": {c["id"]: c["verdict"] for c in r["claims"]},
                "seconds": r["timing"]["seconds"],
            }
        )
        return 0
    c = r["counts"]
    summary = ", ".join(f"{c[s]} {s}" for s in STATUS_ORDER if c[s])
    extra = f"; {c['trivial']} of those holding trivially, {c['holds_only']} hold only under, {c['fails_only']} fail only under"
    print(
        f"{len(r['claims'])} claims: {summary}{extra} ({r['tasks']} experiments, {r['timing']['seconds']:.0f} s)"
    )
    print(f"report: {rep.markdown}")
    print(f"json:   {rep.json}")
    return 0
