"""``newllm train``: Phase 1 fixed-point training with checkpoints, resume, a progress bar and JSON."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from ..model import build_model
from ..phase1 import Phase1Config, train_phase1
from ..runs.distributed import Dist
from ..runs.manifest import MANIFEST
from ..runs.rundir import RunInterrupted
from . import args as A
from . import common
from .progress import Progress

NAME = "train"
HELP = "Phase 1: train the weights so that iterating the update reaches fixed points"


#: Phase 1 options a recipe sets: argparse dest -> (option, Phase1Config field).
RECIPE_OPTIONS = {
    "epochs": ("--epochs", "epochs"),
    "lr": ("--lr", "learning_rate"),
    "max_iterations": ("--max-iterations", "max_iterations"),
    "threshold": ("--threshold", "threshold"),
    "warmup": ("--warmup", "warmup"),
    "jacobian_weight": ("--jacobian-weight", "jacobian_weight"),
    "sigma_weight": ("--sigma-weight", "sigma_weight"),
    "sigma_margin": ("--sigma-margin", "sigma_margin"),
    "spectral_scale": ("--spectral-scale", "spectral_scale"),
    "variance_weight": ("--variance-weight", "variance_weight"),
    "covariance_weight": ("--covariance-weight", "covariance_weight"),
}


def recipe_name(value: str) -> str:
    """``--recipe`` value: a trained recipe of ``newllm.matrix.RECIPES``."""
    from ..matrix import RECIPES

    if value not in RECIPES or not RECIPES[value].trained:
        names = ", ".join(n for n, r in RECIPES.items() if r.trained)
        raise argparse.ArgumentTypeError(f"unknown recipe {value!r}; expected one of {names}")
    return value


class _ListRecipes(argparse.Action):
    """``--list-recipes``: print every trained recipe (name, variant, about, settings) and exit 0."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from ..matrix import RECIPES

        for name, r in RECIPES.items():
            if r.trained:
                settings = " ".join(f"{k}={v}" for k, v in (r.settings or {}).items())
                print(f"{name:24s} {r.variant:7s} {r.about}\n{'':32s} {settings}")
        parser.exit(0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_model_arguments(p)
    p.add_argument(
        "--recipe",
        type=recipe_name,
        help="start from a named recipe's Phase 1 settings (docs/recipes.md); phase 1 options given "
        "explicitly override it",
    )
    p.add_argument("--list-recipes", action=_ListRecipes, help="list the recipes and exit")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--tokens",
        type=A.integer(1, A.VOCAB_MAX - 1),
        help="one sample of N tokens spread over the vocabulary",
    )
    src.add_argument(
        "--token-ids",
        type=A.integers(0, A.VOCAB_MAX - 1),
        help="one sample: explicit comma-separated token ids",
    )
    src.add_argument("--samples-json", help="JSON file: a list of samples, each a list of token ids")
    src.add_argument(
        "--data",
        help="dialogue source: 'ultrachat' (offline: the local chitchat corpus in "
        "UltraChat's schema), a hub name, or a local .jsonl/.txt path",
    )
    d_ = p.add_argument_group("data (with --data)")
    d_.add_argument(
        "--samples", type=A.integer(1, 10_000_000), default=10, help="conversations to train on (default 10)"
    )
    d_.add_argument("--split", default="train_sft", help="split (default train_sft)")
    d_.add_argument(
        "--max-length",
        type=A.integer(1, 10_000_000),
        default=512,
        help="truncate conversations to this many tokens (default %(default)s)",
    )
    _add_phase1_arguments(p)
    p.add_argument("--seed", type=A.SEED, default=0, help="seed for weights, dropout and probes (default 0)")
    p.add_argument(
        "--out", required=True, type=A.out_dir, help="run directory for checkpoints, log.jsonl and the cache"
    )
    common.add_resume_quiet_json(p)
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes of `torchrun --nproc-per-node N -m newllm train ...` "
        "(gloo on CPU, nccl on CUDA; batched loop)",
    )


IGNORED = [
    A.Ignored(
        ("samples", "max_length", "split"),
        lambda a: a.data is None,
        "without --data (it chooses and cuts the conversations of --data)",
    ),
    A.Ignored(
        ("batch_samples",), lambda a: a.loop == "spec", "with --loop spec (one token per optimizer step)"
    ),
    A.Ignored(
        ("model_seed",),
        lambda a: a.resume and (Path(a.out) / MANIFEST).is_file(),
        "with --resume of a saved run (the weights come from its checkpoint)",
    ),
]


def _add_phase1_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("phase 1")
    d = Phase1Config()
    g.add_argument(
        "--loop",
        choices=("spec", "batched"),
        default=d.loop,
        help="spec: the seeds' loop, one token at a time; batched: a batch of samples together "
        "(default %(default)s)",
    )
    common.add_epochs_and_lr(g, d.epochs, d.learning_rate)
    g.add_argument(
        "--max-iterations",
        type=A.integer(1, 1_000_000),
        default=d.max_iterations,
        help="inner iterations per token at most (default %(default)s)",
    )
    g.add_argument(
        "--threshold",
        type=A.number(0, None, lo_open=True),
        default=d.threshold,
        help="mse threshold (default 0.01)",
    )
    common.deprecated_alias(g, "--tolerance", "--threshold", type=A.number(0, None, lo_open=True))
    g.add_argument(
        "--warmup",
        type=A.integer(0, 1_000_000 - 1),
        default=d.warmup,
        help="iterations before convergence is checked (default %(default)s)",
    )
    g.add_argument(
        "--grad-clip",
        type=A.number(0, None, lo_open=True),
        default=d.grad_clip,
        help="max grad norm (default 1.0)",
    )
    g.add_argument(
        "--batch-samples",
        type=A.integer(1, 1_000_000),
        default=d.batch_samples,
        help="samples per optimizer batch (batched loop; default %(default)s)",
    )
    _add_recipe_term_arguments(g, d)


#: The recipe terms' options (docs/recipes.md): flag -> (Phase1Config field, help); each >= 0.
TERM_OPTIONS = {
    "--jacobian-weight": ("jacobian_weight", "weight of the Hutchinson ||J||_F^2/D penalty (default 0: off)"),
    "--sigma-weight": ("sigma_weight", "weight of the σ_max hinge (default 0: off)"),
    "--sigma-margin": ("sigma_margin", "σ_max hinge margin (default %(default)s)"),
    "--variance-weight": (
        "variance_weight",
        "weight of the VICReg variance term of the contexts (default 0: off)",
    ),
    "--covariance-weight": (
        "covariance_weight",
        "weight of the VICReg covariance term of the contexts (default 0: off)",
    ),
}


def _add_recipe_term_arguments(g: argparse._ArgumentGroup, d: Phase1Config) -> None:
    """The recipe terms' options, all off by default, and the spectral cap."""
    for flag, (field, help_) in TERM_OPTIONS.items():
        g.add_argument(flag, type=A.number(0, None), default=getattr(d, field), help=help_)
    g.add_argument(
        "--spectral-scale",
        type=A.number(0, None, lo_open=True),
        default=d.spectral_scale,
        help="cap σ_max of the weights acting on c at this (default: off)",
    )


def phase1_config(args: argparse.Namespace) -> Phase1Config:
    """The Phase1Config of the options, or of ``--recipe`` with the explicitly given options on top."""
    fields = {field: getattr(args, dest) for dest, (_, field) in RECIPE_OPTIONS.items()}
    common_ = {"grad_clip": args.grad_clip, "loop": args.loop, "batch_samples": args.batch_samples}
    if getattr(args, "recipe", None) is None:
        return Phase1Config(**fields, **common_, seed=args.seed)
    from ..matrix import RECIPES

    recipe = RECIPES[args.recipe]
    if recipe.variant != "plain":
        raise ValueError(
            f"recipe {args.recipe!r} is the {recipe.variant} variant: `newllm recipes` trains and measures it"
        )
    argv = getattr(args, "_argv", [])
    given = {
        field: fields[field]
        for opt, field in RECIPE_OPTIONS.values()
        if any(a == opt or a.startswith(opt + "=") for a in argv)
    }
    settings = {**(recipe.settings or {}), **given}
    return Phase1Config(**settings, **common_, seed=args.seed)


def samples_from_args(args: argparse.Namespace, vocab_size: int) -> list[list[int]]:
    if args.data is not None:
        from ..data import VOCAB_SIZE, load_samples

        if vocab_size < VOCAB_SIZE:
            raise ValueError(
                f"--data needs vocab_size >= {VOCAB_SIZE} (GPT-2 + 2 chat markers), got {vocab_size}"
            )
        common.quiet_datasets()
        with Progress("data", enabled=not args.quiet) as progress:
            loaded = load_samples(args.data, args.split, args.samples, args.max_length, progress=progress)
        common.warn_split_ignored(args, loaded.source)
        args._data_meta = {
            "source": args.data,
            "split": args.split,
            "samples": args.samples,
            "max_length": args.max_length,
            "conversation_ids": loaded.ids,
        }
        return loaded.input_ids
    if args.samples_json is not None:
        return common.read_samples_json(args.samples_json, vocab_size)
    return [common.token_ids(args, vocab_size)]


def run(args: argparse.Namespace) -> int:
    mcfg = common.model_config(args)
    pcfg = phase1_config(args)
    samples = samples_from_args(args, mcfg.vocab_size)
    seed = args.seed if args.model_seed is None else args.model_seed
    dist = Dist.from_env() if args.distributed else Dist.single()
    try:
        return _run(args, mcfg, pcfg, samples, build_model(mcfg, seed=seed).to(dist.device), dist)
    finally:
        dist.shutdown()


def _run(args, mcfg, pcfg, samples, model, dist: Dist) -> int:
    t0 = time.perf_counter()

    def on_epoch(s) -> None:
        if args.json:
            common.print_json({"event": "epoch", **asdict(s)})
        else:
            print(
                f"epoch {s.epoch}/{pcfg.epochs} | converged {s.converged}/{s.tokens} ({100 * s.rate:.1f}%) | "
                f"mean iterations {s.mean_iterations:.2f} | mean loss {s.mean_loss:.6f} | "
                f"optimizer steps {s.optimizer_steps} | {s.seconds:.1f} s"
                + (
                    f" | COLLAPSED (context rms {s.context_rms:.3f}, max cosine {s.max_cosine:.4f})"
                    if s.collapsed
                    else ""
                ),
                flush=True,
            )

    try:
        run_ = train_phase1(
            model,
            samples,
            pcfg,
            out_dir=args.out,
            resume=args.resume,
            progress=not args.quiet,
            on_epoch=on_epoch,
            dist=dist,
            # data.json: which conversations the samples are, in cache order (Phase 2 splits by them)
            data=getattr(args, "_data_meta", None),
            notice=common.note if dist.is_main else None,
        )
    except RunInterrupted as exc:
        launcher = f"torchrun --nproc-per-node {dist.world_size} -m newllm" if dist.enabled else "newllm"
        return common.interrupted(exc, args, launcher) if dist.is_main else 130
    if not dist.is_main:
        return 0
    final = {
        "event": "done",
        "arch": mcfg.arch_name,
        "structure": list(mcfg.blocks),
        "tokens": sum(map(len, samples)),
        "epochs": len(run_.epochs),
        "rate": run_.final.rate,
        "success": run_.final.success,
        "success_rate": pcfg.success_rate,
        "collapsed": run_.final.collapsed,
        "checkpoint": str(args.out),
        "world_size": dist.world_size,
        "checkpoint_tag": run_.checkpoint_tag,
        "cache": str(run_.cache) if run_.cache else None,
        "seconds": time.perf_counter() - t0,
    }
    if args.json:
        common.print_json(final)
    else:
        print(
            f"{verdict(run_.final, pcfg)}; checkpoint {args.out} ({run_.checkpoint_tag}); cache {final['cache']}"
        )
    return 0


def verdict(final, pcfg: Phase1Config) -> str:
    """The last line's verdict on the final epoch: met, or NOT met with every reason (rate, collapse)."""
    crit = f"success criterion (rate >= {pcfg.success_rate:.0%}, no collapse)"
    if final.success:
        return f"{crit} met"
    reasons = []
    if final.rate < pcfg.success_rate:
        reasons.append(f"rate {final.rate:.1%} is below {pcfg.success_rate:.0%}")
    if final.collapsed:
        reasons.append(
            f"the contexts COLLAPSED at rate {final.rate:.1%} (context rms {final.context_rms:.3g}, max cosine "
            f"{final.max_cosine:.4f}, effective rank {final.effective_rank:.2f}): different tokens reach "
            "(nearly) the same context, or a context is near zero (docs/phase1.md)"
        )
    return f"{crit} NOT met: " + "; ".join(reasons)
