"""``newllm contraction``: σ_max, ρ, pair-ratio bound and observed factor at the tokens' fixed points."""

from __future__ import annotations

import argparse

from ..contraction import contraction_report, estimates_table
from ..contraction.report import DTYPES, SPECTRAL
from ..model import build_model
from . import common

NAME = "contraction"
HELP = "measure how strongly the update contracts at each token's fixed point (eval mode)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_model_arguments(p)
    p.add_argument("--checkpoint", help="trained weights from this run directory (model config from it)")
    common.add_token_arguments(p)
    g = p.add_argument_group("estimates")
    g.add_argument(
        "--picard-iterations",
        type=int,
        default=1000,
        help="plain iterations whose l2 trace gives the observed factor (default 1000)",
    )
    g.add_argument(
        "--threshold", type=float, default=1e-10, help="rel residual of the fixed point (default 1e-10)"
    )
    common.deprecated_alias(g, "--tolerance", "--threshold", type=float)
    g.add_argument(
        "--refine-iterations",
        type=int,
        default=2000,
        help="Anderson iterations to the fixed point at most (default %(default)s)",
    )
    g.add_argument(
        "--spectral",
        choices=SPECTRAL,
        default="auto",
        help="exact: full Jacobian; iterative: Lanczos + Arnoldi; auto: exact up to dim 512 (default %(default)s)",
    )
    g.add_argument("--pairs", type=int, default=8, help="sampled pairs per radius (default 8)")
    g.add_argument(
        "--ascent-steps", type=int, default=10, help="gradient-ascent steps on the pair ratio (default 10)"
    )
    g.add_argument(
        "--dtype", choices=tuple(DTYPES), default="float64", help="compute dtype (default float64)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for weights and random probes (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    if args.checkpoint:
        model = common.model_from_checkpoint(args)
    else:
        seed = args.seed if args.model_seed is None else args.model_seed
        model = build_model(common.model_config(args), seed=seed)
    mcfg = model.config
    ids = common.token_ids(args, mcfg.vocab_size)
    for name in ("picard_iterations", "refine_iterations", "pairs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.ascent_steps < 0:
        raise ValueError(f"--ascent-steps must be >= 0, got {args.ascent_steps}")
    if not args.threshold > 0:
        raise ValueError(f"--threshold must be > 0, got {args.threshold}")
    report = contraction_report(
        model,
        ids,
        picard_iterations=args.picard_iterations,
        threshold=args.threshold,
        refine_iterations=args.refine_iterations,
        spectral=args.spectral,
        pairs=args.pairs,
        ascent_steps=args.ascent_steps,
        dtype=args.dtype,
        seed=args.seed,
    )
    out = {
        "arch": mcfg.arch_name,
        "structure": list(mcfg.blocks),
        "checkpoint": args.checkpoint,
        "seed": args.seed,
        **report,
    }
    if args.json:
        common.print_json(out)
    else:
        src = f"checkpoint {args.checkpoint}" if args.checkpoint else "untrained"
        print(
            f"arch {out['arch']} structure {tuple(out['structure'])}  {src}  tokens {out['tokens']}  eval mode"
        )
        for line in estimates_table(out):
            print(line)
    return 0
