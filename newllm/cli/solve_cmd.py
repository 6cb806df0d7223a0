"""``newllm solve``: fixed-point contexts for a set of tokens, as a table or one JSON object."""

from __future__ import annotations

import argparse
import time

import torch

from .. import diagnostics
from ..config import SolverConfig
from ..metrics import METRICS
from ..model import build_model
from ..solve import solve
from ..solvers import SOLVERS
from . import args as A
from . import common
from .progress import Progress

NAME = "solve"
HELP = "iterate the context update to a fixed point for a set of tokens and report convergence"


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_model_arguments(p)
    p.add_argument(
        "--checkpoint", help="solve with trained weights from this run directory (model config from it)"
    )
    common.add_token_arguments(p)
    g = p.add_argument_group("solver")
    g.add_argument("--metric", choices=tuple(METRICS), default="mse", help="residual metric (default mse)")
    g.add_argument(
        "--threshold",
        type=A.number(0, None, lo_open=True),
        default=0.01,
        help="convergence threshold (default 0.01)",
    )
    g.add_argument(
        "--max-iterations",
        type=A.integer(1, 10_000_000),
        default=200,
        help="iteration budget per token (default %(default)s)",
    )
    g.add_argument(
        "--warmup",
        type=A.integer(0, 10_000_000 - 1),
        default=0,
        help="iterations before convergence is checked (default 0)",
    )
    g.add_argument(
        "--context-mode",
        choices=("reset", "carry"),
        default="reset",
        help="reset: every token from zeros; carry: token t from t-1's fixed point (default %(default)s)",
    )
    g.add_argument(
        "--method", choices=tuple(SOLVERS), default="picard", help="solver (default %(default)s)"
    )
    g.add_argument(
        "--damping",
        type=A.number(0, 1, lo_open=True),
        default=1.0,
        help="Picard/Anderson damping beta (default 1)",
    )
    g.add_argument("--train-mode", action="store_true", help="iterate in train mode (dropout on)")
    common.deprecated_alias(g, "--dropout", "--train-mode", flag=True)
    p.add_argument("--seed", type=A.SEED, default=0, help="seed for weights and dropout masks (default 0)")
    p.add_argument("--quiet", action="store_true", help="no status line on stderr")
    p.add_argument(
        "--certify",
        action="store_true",
        help="a posteriori error bound per token (l2, float64; keys error_bound, error_bound_kind)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


IGNORED = [
    A.Ignored(
        ("seed",),
        lambda a: a.checkpoint is not None and not a.train_mode,
        "with --checkpoint and without --train-mode (it seeds the weights and the dropout masks only)",
    ),
]


def solver_config(args: argparse.Namespace) -> SolverConfig:
    return SolverConfig(
        max_iterations=args.max_iterations,
        warmup=args.warmup,
        threshold=args.threshold,
        metric=args.metric,
        context_mode=args.context_mode,
        method=args.method,
        damping=args.damping,
        train_mode=args.train_mode,
    )


def run(args: argparse.Namespace) -> int:
    scfg = solver_config(args)
    if args.checkpoint:
        model = common.model_from_checkpoint(args)
        mcfg = model.config
    else:
        mcfg = common.model_config(args)
        seed = args.seed if args.model_seed is None else args.model_seed
        model = build_model(mcfg, seed=seed)
    ids = common.token_ids(args, mcfg.vocab_size)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    with Progress("solve", enabled=not args.quiet) as progress:
        progress(0, None, f"{len(ids)} tokens")
        res = solve(model, ids, scfg, generator=gen, certify=args.certify)
    seconds = time.perf_counter() - t0
    report = diagnostics.collapse_report(res.context, torch.tensor(ids))
    out = {
        "arch": mcfg.arch_name,
        "checkpoint": args.checkpoint,
        "structure": list(mcfg.blocks),
        "tokens": len(ids),
        "token_ids": ids,
        **res.summary(),
        "max_iterations": scfg.max_iterations,
        "warmup": scfg.warmup,
        "context_mode": scfg.context_mode,
        "method": scfg.method,
        "train_mode": scfg.train_mode,
        "seed": args.seed,
        "certify": args.certify,
        "context_rms": report["context_rms"],
        "context_norm": report["context_norm"],
        "effective_rank": report["effective_rank"],
        "max_cosine": report["max_cosine"],
        "seconds": seconds,
    }
    if args.json:
        common.print_json(out)
    else:
        print_table(out)
    return 0


def print_table(o: dict) -> None:
    print(
        f"arch {o['arch']} structure {tuple(o['structure'])}  tokens {o['tokens']}  "
        f"metric {o['metric']} < {o['threshold']:g}  warmup {o['warmup']}  max {o['max_iterations']}  "
        f"mode {o['context_mode']}  method {o['method']}"
    )
    print(f"{'token':>8} {'status':>15} {'iters':>6} {o['metric'] + ' residual':>16}")
    bounds = o.get("error_bound") or [None] * len(o["token_ids"])
    rows = list(
        zip(o["token_ids"], o["status"], o["iterations"], o["final_residual"][o["metric"]], bounds, strict=True)
    )
    shown: list[tuple | None] = list(rows) if len(rows) <= 20 else [*rows[:10], None, *rows[-5:]]
    for r in shown:
        if r is None:
            print(f"{'...':>8}")
            continue
        res = "nan" if r[3] is None else f"{r[3]:.3e}"
        print(f"{r[0]:>8} {r[1]:>15} {r[2]:>6} {res:>16}  {verdict(r[1], r[4]) if o['certify'] else ''}".rstrip())
    if o["certify"]:
        print(f"certified {o['certified']}/{o['converged']} converged tokens (l2 error bound, see docs/certify.md)")
    mic = o["mean_iterations_converged"]
    print(
        f"converged {o['converged']}/{o['tokens']} ({100 * o['rate']:.1f}%)  diverged {o['diverged']}  "
        f"mean iterations {o['mean_iterations']:.2f} (converged only: {'-' if mic is None else f'{mic:.2f}'})"
    )
    print(
        f"context rms {o['context_rms']:.4f}  norm {o['context_norm']:.4f}  effective rank "
        f"{o['effective_rank']:.2f}  max pairwise cosine {o['max_cosine'] if o['max_cosine'] is None else round(o['max_cosine'], 4)}"
        f"  ({o['seconds']:.2f} s)"
    )


def verdict(status: str, bound: float | None) -> str:
    """The certify column: ``converged, error ≤ X`` (l2) or ``converged (residual only, uncertified)``."""
    if status != "converged":
        return ""
    if bound is None:  # inf (nothing certified) is written as null
        return "converged (residual only, uncertified)"
    return f"converged, error ≤ {bound:.2e}"
