"""Argument groups shared by several subcommands, and their conversion into configs."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from ..config import ARCH_VALUES, ModelConfig
from ..runs.jsonio import dumps
from ..tokens import spread_token_ids


def int_list(text: str) -> tuple[int, ...]:
    """``"100,200"`` -> ``(100, 200)`` (argparse type; ValueError text names the bad item)."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {text!r}")
    out = []
    for t in items:
        try:
            out.append(int(t))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{t!r} is not an integer (in {text!r})") from None
    return tuple(out)


class _Deprecated(argparse.Action):
    """A renamed flag kept for one release: stores into the new flag's dest and warns on stderr."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kw: Any):
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        print(f"warning: {option_string} is deprecated, use {self.new} (docs/glossary.md)", file=sys.stderr)
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


def deprecated_alias(
    p: argparse._ActionsContainer, old: str, new: str, *, flag: bool = False, **kw: Any
) -> None:
    """Accept ``old`` as a hidden, warning alias of the option ``new`` (same dest, same type)."""
    dest = new.lstrip("-").replace("-", "_")
    p.add_argument(old, dest=dest, action=_Deprecated, new=new, nargs=0 if flag else None, **kw)


def add_model_arguments(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=ARCH_VALUES, help="architecture (default layerwise)")
    g.add_argument("--structure", type=int_list, help="layers per block, e.g. 2,2 (generalises --arch)")
    g.add_argument("--layers", type=int, help="number of layers (default 2)")
    g.add_argument("--dim", type=int, help="embed/context/hidden dim (default 256)")
    g.add_argument("--vocab-size", type=int, help="vocabulary size (default 50259)")
    g.add_argument("--dropout-p", type=float, help="dropout probability of the model (default 0.1)")
    g.add_argument("--model-seed", type=int, default=None, help="weight-init seed (default: --seed)")


def add_token_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--tokens", type=int, help="N tokens spread over the vocabulary: ids (i+1)*min(100,(V-1)//N)"
    )
    g.add_argument("--token-ids", type=int_list, help="explicit comma-separated token ids")


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
    return ModelConfig(**kw)


def read_samples_json(path: str) -> list[list[int]]:
    """A JSON file holding a non-empty list of non-empty lists of integer token ids."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read samples file {path!r}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"samples file {path!r} is not valid JSON: {exc}") from None
    if not isinstance(data, list) or not data or not all(isinstance(s, list) and s for s in data):
        raise ValueError(f"samples file {path!r} must hold a non-empty list of non-empty lists of token ids")
    for i, s in enumerate(data):
        for j, t in enumerate(s):
            if isinstance(t, bool) or not isinstance(t, int):
                raise ValueError(
                    f"samples file {path!r}: sample {i} position {j} holds {t!r}, not an integer id"
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
