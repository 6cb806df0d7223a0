"""``newllm data info|show``: token statistics of a dialogue source, or a few encoded conversations."""

from __future__ import annotations

import argparse
import itertools
import statistics
from typing import Any

from . import common

NAME = "data"
HELP = "inspect a dialogue source: token statistics (info) or encoded conversations (show)"


def positive_or_none(text: str) -> int | None:
    """argparse type: a positive integer, or ``none`` for no limit."""
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'none', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'none', got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for action, helptext, default_samples in (
        ("info", "token statistics of a split (all conversations unless --samples)", None),
        ("show", "decoded text and loss mask of the first --samples conversations", 3),
    ):
        q = sub.add_parser(action, help=helptext, description=helptext)
        q.add_argument(
            "--source",
            default="ultrachat",
            help="ultrachat (local), a .jsonl/.txt path or dir, or a hub name (default %(default)s)",
        )
        q.add_argument("--split", default="train_sft", help="default train_sft")
        q.add_argument(
            "--samples",
            type=positive_or_none,
            default=default_samples,
            help=f"number of conversations, or none for all (default {default_samples or 'none'})",
        )
        q.add_argument(
            "--max-length",
            type=positive_or_none,
            default=512,
            help="truncate to N tokens, none: keep all (default 512)",
        )
        q.add_argument(
            "--seed",
            type=int,
            default=None,
            help="shuffle the split with this seed first (default: stored order)",
        )
        q.add_argument("--json", action="store_true", help="print one JSON object")
        if action == "show":
            q.add_argument(
                "--mask", action="store_true", help="mark the loss-mask tokens as «...» in the text"
            )
        q.set_defaults(_action=run_info if action == "info" else run_show)


def _load(args: argparse.Namespace) -> Any:
    from ..data import load_samples
    from ..data._deps import require

    require("datasets").disable_progress_bars()
    return load_samples(args.source, args.split, args.samples, args.max_length, args.seed)


def run(args: argparse.Namespace) -> int:
    return int(args._action(args) or 0)


def info(samples: Any) -> dict[str, Any]:
    """The statistics printed by ``newllm data info``."""
    convs = samples.conversations
    lengths = [len(c.input_ids) for c in convs]
    full = [c.full_length for c in convs]
    loss = sum(c.num_loss_tokens for c in convs)
    src = samples.source
    out: dict[str, Any] = {
        "source": src.source,
        "split": src.split,
        "kind": src.kind,
        "path": None if src.path is None else str(src.path),
        "conversations_available": samples.available,
        "conversations": len(convs),
        "seed": samples.seed,
        "max_length": samples.max_length,
        "tokens": sum(lengths),
        "tokens_before_truncation": sum(full),
        "truncated": sum(c.truncated for c in convs),
        "tokens_per_conversation": {
            "mean": statistics.fmean(lengths),
            "median": statistics.median(lengths),
            "min": min(lengths),
            "max": max(lengths),
        },
        "loss_tokens": loss,
        "loss_fraction": loss / max(1, sum(lengths)),
        "load_seconds": samples.load_seconds,
        "encode_seconds": samples.encode_seconds,
    }
    if src.meta:
        out["corpus"] = {
            k: src.meta[k]
            for k in (
                "directory",
                "built_now",
                "build_seconds",
                "raw",
                "dropped_single_speaker",
                "dropped_duplicates",
                "splits",
            )
        }
    return out


def run_info(args: argparse.Namespace) -> int:
    o = info(_load(args))
    if args.json:
        common.print_json(o)
        return 0
    t = o["tokens_per_conversation"]
    print(f"source {o['source']} ({o['kind']})  split {o['split']}  path {o['path']}")
    print(
        f"conversations {o['conversations']} of {o['conversations_available']}  max length {o['max_length']}  "
        f"tokens {o['tokens']} ({o['tokens_before_truncation']} before truncation, {o['truncated']} truncated)"
    )
    print(
        f"tokens per conversation: mean {t['mean']:.1f}  median {t['median']:g}  min {t['min']}  max {t['max']}  "
        f"loss-mask tokens {o['loss_tokens']} ({100 * o['loss_fraction']:.1f}%)"
    )
    if "corpus" in o:
        c = o["corpus"]
        print(
            f"corpus {c['directory']}  {'built now' if c['built_now'] else 'cached'} (build {c['build_seconds']:.2f} s)  "
            f"raw {c['raw']}  dropped: single-speaker {c['dropped_single_speaker']}, duplicates {c['dropped_duplicates']}"
        )
    print(f"load {o['load_seconds']:.2f} s  encode {o['encode_seconds']:.2f} s")
    return 0


def marked_text(tokenizer: Any, ids: list[int], mask: list[int]) -> str:
    """Decoded text with each run of loss-mask tokens wrapped in « »."""
    parts = []
    for m, run_ in itertools.groupby(zip(ids, mask, strict=True), key=lambda x: x[1]):
        chunk = [t for t, _ in run_]
        text = tokenizer.decode(chunk)
        parts.append(f"«{text}»" if m else text)
    return "".join(parts)


def run_show(args: argparse.Namespace) -> int:
    from ..data import load_tokenizer

    s = _load(args)
    tok = load_tokenizer()
    rows = []
    for c in s.conversations:
        text = marked_text(tok, c.input_ids, c.loss_mask) if args.mask else tok.decode(c.input_ids)
        rows.append(
            {
                "id": c.id,
                "tokens": len(c.input_ids),
                "full_length": c.full_length,
                "loss_tokens": c.num_loss_tokens,
                "input_ids": c.input_ids,
                "loss_mask": c.loss_mask,
                "text": text,
            }
        )
    if args.json:
        common.print_json(
            {"source": args.source, "split": args.split, "max_length": args.max_length, "conversations": rows}
        )
        return 0
    for r in rows:
        print(
            f"=== {r['id']}  tokens {r['tokens']} (of {r['full_length']})  loss-mask tokens {r['loss_tokens']}"
        )
        print(r["text"])
    return 0
