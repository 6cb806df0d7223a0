"""``newllm contraction``: σ_max, ρ, pair-ratio bound and observed factor at the tokens' fixed points."""

from __future__ import annotations

import argparse

from ..contraction import contraction_report, estimates_table
from ..contraction.report import DTYPES, SPECTRAL
from ..contraction.spectral import EXACT_MAX_DIM
from ..model import build_model
from . import args as A
from . import common
from .progress import Progress

NAME = "contraction"
HELP = "measure how strongly the update contracts at each token's fixed point (eval mode)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_model_arguments(p)
    p.add_argument("--checkpoint", help="trained weights from this run directory (model config from it)")
    common.add_token_arguments(p)
    g = p.add_argument_group("estimates")
    g.add_argument(
        "--picard-iterations",
        type=A.integer(2, 1_000_000),
        default=1000,
        help="plain iterations whose l2 trace gives the observed factor (default 1000)",
    )
    g.add_argument(
        "--threshold",
        type=A.number(0, None, lo_open=True),
        default=1e-10,
        help="rel residual of the fixed point (default 1e-10)",
    )
    common.deprecated_alias(g, "--tolerance", "--threshold", type=A.number(0, None, lo_open=True))
    g.add_argument(
        "--refine-iterations",
        type=A.integer(1, 10_000_000),
        default=2000,
        help="Anderson iterations to the fixed point at most (default %(default)s)",
    )
    g.add_argument(
        "--spectral",
        choices=SPECTRAL,
        default="auto",
        help="exact: full Jacobian; iterative: Lanczos + Arnoldi; auto: exact up to dim 512 (default %(default)s)",
    )
    g.add_argument(
        "--pairs", type=A.integer(1, 10_000), default=8, help="sampled pairs per radius (default 8)"
    )
    g.add_argument(
        "--ascent-steps",
        type=A.integer(0, 10_000),
        default=10,
        help="gradient-ascent steps on the pair ratio (default 10)",
    )
    g.add_argument(
        "--dtype", choices=tuple(DTYPES), default="float64", help="compute dtype (default float64)"
    )
    p.add_argument("--seed", type=A.SEED, default=0, help="seed for weights and random probes (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object")


#: Float64 ``[tokens, dim, dim]`` tensors alive at once while the exact spectrum is computed (a bound).
JACOBIAN_COPIES = 4


def check_jacobian_memory(spectral: str, tokens: int, dim: int) -> None:
    """ValueError when the exact Jacobians (``[tokens, dim, dim]`` float64; :data:`JACOBIAN_COPIES` of them
    at the peak: the vmapped rows, the permuted copy, the eigenvalue workspace) exceed memory."""
    if spectral == "iterative" or (spectral == "auto" and dim > EXACT_MAX_DIM):
        return
    need, have = JACOBIAN_COPIES * 8 * tokens * dim * dim, common.machine_memory()
    if have is not None and need > have:
        raise ValueError(
            f"--spectral {spectral}: the exact Jacobians of {tokens} tokens at dim {dim} need "
            f"{need / 2**30:.1f} GiB, this machine has {have / 2**30:.1f} GiB; pass fewer tokens or "
            "--spectral iterative"
        )


def run(args: argparse.Namespace) -> int:
    if args.checkpoint:
        model = common.model_from_checkpoint(args)
    else:
        seed = args.seed if args.model_seed is None else args.model_seed
        model = build_model(common.model_config(args), seed=seed)
    mcfg = model.config
    ids = common.token_ids(args, mcfg.vocab_size)
    check_jacobian_memory(args.spectral, len(ids), mcfg.context_dim)
    with Progress("contraction", enabled=not args.quiet, unit="steps") as progress:
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
            progress=progress,
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
