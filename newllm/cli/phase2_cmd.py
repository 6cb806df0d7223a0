"""``newllm phase2``: train a next-token head on a Phase 1 run's fixed-point contexts, beside baselines."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import SolverConfig
from ..phase1.cache import CACHE_FILE, Phase1Cache, build_cache, load_cache, save_cache
from ..phase2 import Phase2Config, train_phase2
from ..runs.checkpoint import MANIFEST, load_checkpoint
from . import common

NAME = "phase2"
HELP = (
    "Phase 2: train a next-token head on a Phase 1 run's fixed-point contexts (with unigram/bigram baselines)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Phase2Config()
    p.add_argument(
        "--checkpoint", required=True, help="Phase 1 run directory (checkpoint.json + cache.safetensors)"
    )
    p.add_argument(
        "--cache-mode",
        choices=("reset", "carry"),
        default="reset",
        help="contexts: reset = the run's cache (every token from zeros, the seeds); carry = rebuilt so that "
        "token t starts from t-1's fixed point (default reset)",
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs (default %(default)s)")
    p.add_argument(
        "--lr", type=float, default=d.learning_rate, help=f"Adam learning rate (default {d.learning_rate:g})"
    )
    p.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"pairs per step (default {d.batch_size})"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help=f"conversations held out (default {d.val_fraction})",
    )
    p.add_argument(
        "--split-seed", type=int, default=d.split_seed, help="seed of the conversation split (default 0)"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the head init and shuffles (default 0)")
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
    p.add_argument("--out", help="Phase 2 run directory (default CHECKPOINT/phase2-MODE[-tied][-assistant])")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object per epoch and a final one")


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


def read_data_json(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "data.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("conversation_ids"), list):
        raise ValueError(f"{str(path)!r} has no list 'conversation_ids'")
    return meta


def contexts(model, cache: Phase1Cache, mode: str, out: Path) -> tuple[Phase1Cache, float | None]:
    """The run's cache when its mode is ``mode``; else the one in ``out`` when it was built from the same
    weights and solver settings; else one rebuilt with ``build_cache`` (saved in ``out``).
    Returns the cache and the seconds spent building it (None when none was built)."""
    if cache.context_mode == mode:
        return cache, None
    path = out / CACHE_FILE
    solver = SolverConfig.from_dict({**cache.solver, "context_mode": mode})
    if path.is_file():
        mine = load_cache(path)
        if mine.checkpoint == cache.checkpoint and mine.solver == solver.to_dict():
            return mine, None
    samples = [cache.sample(s)[0].tolist() for s in range(cache.num_samples)]
    t0 = time.perf_counter()
    built = build_cache(model, samples, solver, checkpoint=cache.checkpoint)
    seconds = time.perf_counter() - t0
    save_cache(path, built)
    return built, seconds


def loss_masks(meta: dict[str, Any] | None, cache: Phase1Cache) -> list[list[int]]:
    """The assistant-only masks of the run's conversations, checked against the cache's tokens."""
    if meta is None:
        raise ValueError("--assistant-only needs the run's data.json (a run trained with --data)")
    from ..data import load_samples

    s = load_samples(meta["source"], meta["split"], meta["samples"], meta["max_length"])
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
    run_dir = Path(args.checkpoint)
    out = Path(args.out) if args.out else default_out(args)
    if not args.resume and (out / MANIFEST).exists():
        raise ValueError(f"{str(out)!r} already holds a checkpoint: pass --resume or another --out")
    t0 = time.perf_counter()
    ck = load_checkpoint(run_dir)
    cache = load_cache(run_dir / CACHE_FILE, expect_checkpoint=ck.tag)
    meta = read_data_json(run_dir)
    masks = loss_masks(meta, cache) if cfg.assistant_only else None
    out.mkdir(parents=True, exist_ok=True)
    cache, cache_seconds = contexts(ck.model, cache, args.cache_mode, out)

    def on_epoch(e) -> None:
        if args.json:
            common.print_json({"event": "epoch", **asdict(e)})
        else:
            v = e.val
            print(
                f"epoch {e.epoch}/{cfg.epochs} | train loss {e.train_loss:.4f} | val ce {v['ce']:.4f} "
                f"ppl {v['ppl']:.1f} acc {v['acc']:.4f} | {e.seconds:.1f} s",
                flush=True,
            )

    state = {"phase1_checkpoint": str(run_dir.resolve()), "phase1_tag": ck.tag, "data": _data_summary(meta)}
    r = train_phase2(
        ck.model,
        cache,
        cfg,
        conversation_ids=None if meta is None else meta["conversation_ids"],
        loss_masks=masks,
        out_dir=out,
        resume=args.resume,
        progress=not args.quiet,
        on_epoch=on_epoch,
        state=state,
    )
    final = {
        "event": "done",
        "checkpoint": str(out),
        "phase1_checkpoint": str(run_dir),
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
        for name, s in [("model", r.final.val), *((k, v.to_dict()) for k, v in r.baselines.items())]:
            print(
                f"{name:>8}: val ce {s['ce']:.4f}  ppl {s['ppl']:.1f}  acc {s['acc']:.4f}  ({s['positions']} positions)"
            )
        print(
            f"contexts {final['cache_mode']}; {'beats' if final['beats_bigram'] else 'does NOT beat'} the bigram "
            f"baseline (cross-entropy); checkpoint {out}"
        )
    return 0


def _data_summary(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    if meta is None:
        return None
    return {k: v for k, v in meta.items() if k != "conversation_ids"}
