"""``newllm phase2``: train a next-token head on a Phase 1 run's fixed-point contexts, beside baselines."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import SolverConfig
from ..phase1.cache import Phase1Cache, build_cache, read_cache
from ..phase2 import Phase2Config, train_phase2
from ..phase2.split import check_conversations, sample_keys
from ..runs.checkpoint import CheckpointError, load_checkpoint
from ..runs.rundir import RunDir, RunInterrupted
from . import args as A
from . import common
from .progress import Progress

NAME = "phase2"
HELP = (
    "Phase 2: train a next-token head on a Phase 1 run's fixed-point contexts (with unigram/bigram baselines)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Phase2Config()
    p.add_argument(
        "--checkpoint",
        required=True,
        help="Phase 1 run directory (its manifest lists cache.safetensors; every file is verified)",
    )
    p.add_argument(
        "--cache-mode",
        choices=("reset", "carry"),
        default="reset",
        help="contexts: reset = the run's cache (every token from zeros, the seeds); carry = rebuilt so that "
        "token t starts from t-1's fixed point (default reset)",
    )
    common.add_epochs_and_lr(p, d.epochs, d.learning_rate)
    p.add_argument(
        "--batch-size",
        type=A.integer(1, 10_000_000),
        default=d.batch_size,
        help=f"pairs per step (default {d.batch_size})",
    )
    p.add_argument(
        "--val-fraction",
        type=A.number(0, 1, lo_open=True, hi_open=True),
        default=d.val_fraction,
        help=f"conversations held out (default {d.val_fraction})",
    )
    p.add_argument(
        "--split-seed", type=A.SEED, default=d.split_seed, help="seed of the conversation split (default 0)"
    )
    p.add_argument(
        "--seed", type=A.SEED, default=d.seed, help="seed of the head init and shuffles (default 0)"
    )
    p.add_argument(
        "--tie", action="store_true", help="logits = W_proj(c) @ E^T + b with the frozen Phase 1 embedding E"
    )
    p.add_argument(
        "--assistant-only",
        action="store_true",
        help="train and score only targets in the assistant-only loss mask (needs data.json); default: all targets",
    )
    p.add_argument(
        "--no-standardize",
        action="store_true",
        help="feed raw contexts to the head (default: standardised with the training contexts' mean/std)",
    )
    p.add_argument(
        "--zero-bias",
        action="store_true",
        help="start the head's bias at 0 (default: the log of the training split's unigram)",
    )
    p.add_argument(
        "--out",
        type=A.out_dir,
        help="Phase 2 run directory (default CHECKPOINT/phase2-MODE[-tied][-assistant])",
    )
    common.add_resume_quiet_json(p)


def phase2_config(args: argparse.Namespace) -> Phase2Config:
    return Phase2Config(
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        val_fraction=args.val_fraction,
        split_seed=args.split_seed,
        seed=args.seed,
        tie=args.tie,
        assistant_only=args.assistant_only,
        standardize=not args.no_standardize,
        unigram_bias=not args.zero_bias,
    )


def default_out(args: argparse.Namespace) -> Path:
    name = (
        f"phase2-{args.cache_mode}"
        + ("-tied" if args.tie else "")
        + ("-assistant" if args.assistant_only else "")
    )
    return Path(args.checkpoint) / name


def read_data_json(rd: RunDir, num_samples: int) -> dict[str, Any] | None:
    """The run's verified data snapshot (data.json, listed in its manifest), or None for a run without --data."""
    rd.refuse_unlisted("data")
    if not rd.lists("data"):
        return None
    meta = rd.read_json("data")
    where = repr(str(rd.path / rd.entry("data").name))
    ids = meta.get("conversation_ids") if isinstance(meta, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise CheckpointError(f"{where} has no list of strings 'conversation_ids'")
    if len(ids) != num_samples:
        raise CheckpointError(
            f"{where} names {len(ids)} conversations, the cache holds {num_samples} samples"
        )
    return meta


def contexts(
    model, cache: Phase1Cache, mode: str, out: RunDir, resume: bool, progress=None
) -> tuple[Phase1Cache, float | None]:
    """The run's cache when its mode is ``mode``; else, on ``--resume``, the one ``out`` lists (verified)
    when it was built from the same weights and solver settings; else one rebuilt with ``build_cache``
    (the Phase 2 run keeps it). Returns the cache and the seconds spent building it (None: none built)."""
    if cache.context_mode == mode:
        return cache, None
    solver = SolverConfig.from_dict({**cache.solver, "context_mode": mode})
    if resume and out.has_manifest() and out.lists("cache"):
        mine = read_cache(out, expect_checkpoint=cache.checkpoint)
        if mine.solver == solver.to_dict():
            return mine, None
    samples = [cache.sample(s)[0].tolist() for s in range(cache.num_samples)]
    t0 = time.perf_counter()
    built = build_cache(model, samples, solver, checkpoint=cache.checkpoint, progress=progress)
    return built, time.perf_counter() - t0


def loss_masks(meta: dict[str, Any] | None, cache: Phase1Cache, progress=None) -> list[list[int]]:
    """The assistant-only masks of the run's conversations, checked against the cache's tokens."""
    if meta is None:
        raise ValueError("--assistant-only needs the run's data.json (a run trained with --data)")
    from ..data import load_samples

    common.quiet_datasets()
    s = load_samples(meta["source"], meta["split"], meta["samples"], meta["max_length"], progress=progress)
    if s.ids != meta["conversation_ids"]:
        raise ValueError(
            "the data source no longer yields the run's conversations (ids differ from data.json)"
        )
    for i, ids in enumerate(s.input_ids):
        if ids != cache.sample(i)[0].tolist():
            raise ValueError(f"conversation {i} ({s.ids[i]!r}) encodes to other tokens than the cache holds")
    return s.loss_masks


def run(args: argparse.Namespace) -> int:
    cfg = phase2_config(args)
    run_dir = RunDir(args.checkpoint)
    out = RunDir(args.out if args.out else default_out(args))
    if not args.resume and out.has_manifest():
        raise ValueError(
            f"{str(out.path)!r} already holds a checkpoint: pass --resume to continue it, or another --out"
        )
    t0 = time.perf_counter()
    kind = run_dir.manifest().kind
    if kind != "phase1":
        raise CheckpointError(
            f"{str(run_dir.path)!r} is a {kind} run directory, not a Phase 1 one (use the --out of newllm train)"
        )
    ck = load_checkpoint(run_dir)
    own = read_cache(run_dir, expect_checkpoint=ck.tag, vocab_size=ck.model.config.vocab_size)
    meta = read_data_json(run_dir, own.num_samples)
    keys = sample_keys(own.num_samples, None if meta is None else meta["conversation_ids"])
    check_conversations(keys, f"the Phase 1 run {str(run_dir.path)!r}")
    with Progress("phase2", enabled=not args.quiet) as progress:
        masks = loss_masks(meta, own, progress) if cfg.assistant_only else None
        cache, cache_seconds = contexts(ck.model, own, args.cache_mode, out, args.resume, progress)

    state = {
        "phase1_checkpoint": str(run_dir.path.resolve()),
        "phase1_tag": ck.tag,
        "data": _data_summary(meta),
    }
    try:
        r = train_phase2(
            ck.model,
            cache,
            cfg,
            conversation_ids=None if meta is None else meta["conversation_ids"],
            loss_masks=masks,
            out_dir=out.path,
            resume=args.resume,
            progress=not args.quiet,
            on_epoch=_epoch_printer(args, cfg.epochs),
            state=state,
            keep_cache=cache is not own,  # contexts rebuilt in another mode: the Phase 2 run keeps them
            notice=common.note,
        )
    except RunInterrupted as exc:
        return common.interrupted(exc, args)
    final = {
        "event": "done",
        "checkpoint": str(out.path),
        "phase1_checkpoint": str(run_dir.path),
        "phase1_tag": ck.tag,
        "cache_mode": cache.context_mode,
        "cache_converged": float(cache.converged.float().mean()),
        "cache_seconds": cache_seconds,
        "tie": cfg.tie,
        "standardize": cfg.standardize,
        "unigram_bias": cfg.unigram_bias,
        "learning_rate": cfg.learning_rate,
        "assistant_only": cfg.assistant_only,
        "epochs": len(r.epochs),
        **{k: v for k, v in r.split.items() if k != "val_keys"},
        "model": r.final.val,
        "baselines": {k: s.to_dict() for k, s in r.baselines.items()},
        "beats_bigram": r.final.val["ce"] < r.baselines["bigram"].ce,
        "beats_unigram": r.final.val["ce"] < r.baselines["unigram"].ce,
        "train_seconds": sum(e.seconds for e in r.epochs),
        "seconds": time.perf_counter() - t0,
    }
    if args.json:
        common.print_json(final)
    else:
        _print_text(final, r)
    return 0


def _epoch_printer(args: argparse.Namespace, epochs: int):
    def on_epoch(e) -> None:
        if args.json:
            common.print_json({"event": "epoch", **asdict(e)})
        else:
            v = e.val
            print(
                f"epoch {e.epoch}/{epochs} | train loss {e.train_loss:.4f} | val ce {v['ce']:.4f} "
                f"ppl {v['ppl']:.1f} acc {v['acc']:.4f} | {e.seconds:.1f} s",
                flush=True,
            )

    return on_epoch


def _print_text(final: dict[str, Any], r) -> None:
    for name, s in [("model", r.final.val), *((k, v.to_dict()) for k, v in r.baselines.items())]:
        print(
            f"{name:>8}: val ce {s['ce']:.4f}  ppl {s['ppl']:.1f}  acc {s['acc']:.4f}  ({s['positions']} positions)"
        )
    print(
        f"contexts {final['cache_mode']}; {'beats' if final['beats_bigram'] else 'does NOT beat'} the bigram "
        f"baseline (cross-entropy); checkpoint {final['checkpoint']}"
    )


def _data_summary(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    if meta is None:
        return None
    return {k: v for k, v in meta.items() if k != "conversation_ids"}
