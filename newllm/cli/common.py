"""Argument groups shared by several subcommands, and their conversion into configs."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from ..config import ARCH_VALUES, ModelConfig
from ..runs.jsonio import dumps
from ..tokens import spread_token_ids
from . import args as A


class _Deprecated(argparse.Action):
    """A renamed flag kept for one release: stores into the new flag's dest and warns on stderr."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kw: Any):
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        print(f"warning: {option_string} is deprecated, use {self.new} (docs/glossary.md)", file=sys.stderr)
        setattr(namespace, self.dest, True if self.nargs == 0 else values)
        setattr(namespace, A.GIVEN, {*getattr(namespace, A.GIVEN, ()), self.dest})


def deprecated_alias(
    p: argparse._ActionsContainer, old: str, new: str, *, flag: bool = False, **kw: Any
) -> None:
    """Accept ``old`` as a hidden, warning alias of the option ``new`` (same dest, same type)."""
    dest = new.lstrip("-").replace("-", "_")
    p.add_argument(old, dest=dest, action=_Deprecated, new=new, nargs=0 if flag else None, **kw)


def add_model_arguments(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=ARCH_VALUES, help="architecture (default layerwise)")
    g.add_argument(
        "--structure", type=A.integers(1, 64), help="layers per block, e.g. 2,2 (generalises --arch)"
    )
    g.add_argument("--layers", type=A.integer(1, 64), help="number of layers (default 2)")
    g.add_argument("--dim", type=A.integer(1, 65_536), help="embed/context/hidden dim (default 256)")
    g.add_argument("--vocab-size", type=A.integer(2, A.VOCAB_MAX), help="vocabulary size (default 50259)")
    g.add_argument(
        "--dropout-p",
        type=A.number(0, 1, hi_open=True),
        help="dropout probability of the model (default 0.1)",
    )
    g.add_argument("--model-seed", type=A.SEED, default=None, help="weight-init seed (default: --seed)")


def add_token_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--tokens",
        type=A.integer(1, A.VOCAB_MAX - 1),
        help="N tokens spread over the vocabulary: ids (i+1)*min(100,(V-1)//N)",
    )
    g.add_argument(
        "--token-ids", type=A.integers(0, A.VOCAB_MAX - 1), help="explicit comma-separated token ids"
    )


def model_config(args: argparse.Namespace) -> ModelConfig:
    kw: dict[str, Any] = {}
    arch = args.arch
    if args.structure is None and arch is None:
        arch = "layerwise"
    if arch is not None:
        kw["arch"] = arch
    if args.structure is not None:
        kw["structure"] = args.structure
    if args.layers is not None:
        kw["num_layers"] = args.layers
    if args.dim is not None:
        kw.update(embed_dim=args.dim, context_dim=args.dim, hidden_dim=args.dim)
    if args.vocab_size is not None:
        kw["vocab_size"] = args.vocab_size
    if args.dropout_p is not None:
        kw["dropout"] = args.dropout_p
    cfg = ModelConfig(**kw)
    check_memory(cfg)
    return cfg


#: Copies of the weights a command may hold at once (weights, gradients, Adam's two moments).
WEIGHT_COPIES = 4


def model_parameters(cfg: ModelConfig) -> int:
    """The parameter count of ``build_model(cfg)``, from the config alone (tests/test_bad_args.py checks it
    against the built model): embedding and its LayerNorm, then per block its Linear layers, the fused
    gates Linear and the context LayerNorm."""
    e, c, h = cfg.embed_dim, cfg.context_dim, cfg.hidden_dim
    total = cfg.vocab_size * e + 2 * e
    for n in cfg.blocks:
        total += (e + c) * h + h + (n - 1) * (h * h + h) + h * 3 * c + 3 * c + 2 * c
    return total


def check_memory(cfg: ModelConfig) -> None:
    """ValueError, before any allocation, when :data:`WEIGHT_COPIES` float32 copies of the model's weights
    exceed this machine's memory."""
    params = model_parameters(cfg)
    need = WEIGHT_COPIES * 4 * params
    have = machine_memory()
    if have is not None and need > have:
        raise ValueError(
            f"the model has {params:,} parameters: {WEIGHT_COPIES} float32 copies (weights, gradients, Adam) "
            f"need {need / 2**30:.1f} GiB, this machine has {have / 2**30:.1f} GiB; use a smaller --dim, "
            "--vocab-size or --layers"
        )


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def read_samples_json(path: str, vocab_size: int = A.VOCAB_MAX) -> list[list[int]]:
    """A JSON file holding a non-empty list of non-empty lists of integer token ids in ``[0, vocab_size)``."""
    from ..textfiles import read_json

    data = read_json(path, "samples file")
    if not isinstance(data, list) or not data or not all(isinstance(s, list) and s for s in data):
        raise ValueError(f"samples file {path!r} must hold a non-empty list of non-empty lists of token ids")
    for i, s in enumerate(data):
        for j, t in enumerate(s):
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab_size:
                raise ValueError(
                    f"samples file {path!r}: sample {i} position {j} holds {t!r}: expected an integer token "
                    f"id in [0, {vocab_size - 1}] (the vocabulary has {vocab_size} ids)"
                )
    return data


def token_ids(args: argparse.Namespace, vocab_size: int) -> list[int]:
    if args.token_ids is not None:
        return list(args.token_ids)
    return spread_token_ids(args.tokens, vocab_size)


def print_json(obj: Any) -> None:
    """One JSON object on one line (NaN/inf become null)."""
    print(dumps(obj), flush=True)


MODEL_FLAGS = ("arch", "structure", "layers", "dim", "vocab_size", "dropout_p", "model_seed")


def model_from_checkpoint(args: argparse.Namespace):
    """The verified model of ``--checkpoint``; model flags are refused (the config comes from the checkpoint)."""
    from ..runs.checkpoint import load_model

    given = [f"--{f.replace('_', '-')}" for f in MODEL_FLAGS if getattr(args, f, None) is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)} cannot be combined with --checkpoint: the model config comes from it"
        )
    return load_model(args.checkpoint)


def quiet_datasets() -> None:
    """``datasets`` draws no bars and logs no warnings of its own: the CLI's Progress and errors speak."""
    from ..data._deps import require

    datasets = require("datasets")
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def warn_split_ignored(args: argparse.Namespace, source: Any) -> None:
    """Warn when ``--split`` was given but the source (a ResolvedSource) is one file: the whole data."""
    from pathlib import Path

    if (
        A.given(args, "split")
        and source.kind in ("json", "text")
        and Path(source.source).expanduser().is_file()
    ):
        A.warn(
            f"--split {args.split!r} does nothing with the single-file source {source.source!r}: a file is the "
            "whole data (a directory holds one file per split)"
        )


def note(message: str) -> None:
    """A one-line notice on stderr (resuming, starting fresh); shown with --quiet too, never on stdout."""
    print(message, file=sys.stderr, flush=True)


def interrupted(exc: BaseException, args: argparse.Namespace, launcher: str = "newllm") -> int:
    """After Ctrl-C in a run: one ``error:`` line naming the saved epoch and the exact command that
    continues the run (the same arguments plus ``--resume``); exit code 130."""
    argv = [str(a) for a in getattr(args, "_argv", sys.argv[1:])]
    if "--resume" not in argv:
        argv.append("--resume")
    print(f"error: {exc}; continue with: {launcher} {shlex.join(argv)}", file=sys.stderr, flush=True)
    return 130


def add_epochs_and_lr(g: argparse.ArgumentParser | argparse._ArgumentGroup, epochs: int, lr: float) -> None:
    """``--epochs`` and ``--lr`` (Adam) with their defaults, as every training command takes them."""
    g.add_argument(
        "--epochs", type=A.integer(1, 1_000_000), default=epochs, help="epochs (default %(default)s)"
    )
    g.add_argument(
        "--lr", type=A.number(0, 10, lo_open=True), default=lr, help=f"Adam learning rate (default {lr:g})"
    )


def add_resume_quiet_json(p: argparse.ArgumentParser) -> None:
    """``--resume``, ``--quiet`` and ``--json`` as the training commands (train, phase2) take them."""
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (a directory without one starts at epoch 1, "
        "with a note on stderr)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object per epoch and a final one")
