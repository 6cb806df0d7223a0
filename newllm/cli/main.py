"""Entry point: builds the parser from the subcommand modules, turns bad input into exit 2 + one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import (
    bench_report_cmd,
    contraction_cmd,
    data_cmd,
    generate_cmd,
    phase2_cmd,
    recipes_cmd,
    reproduce_cmd,
    solve_cmd,
    train_cmd,
    verify_cmd,
)

#: Subcommand modules; each has ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = [
    reproduce_cmd,
    solve_cmd,
    train_cmd,
    recipes_cmd,
    data_cmd,
    contraction_cmd,
    phase2_cmd,
    generate_cmd,
    bench_report_cmd,
    verify_cmd,
]


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="newllm", description="Context-vector fixed-point (CVFP) language model toolkit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in COMMANDS:
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args._argv = list(sys.argv[1:] if argv is None else argv)  # for the `--resume` line after Ctrl-C
        if getattr(args, "_run", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args._run(args) or 0)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (OSError, KeyboardInterrupt) as exc:
        msg = "interrupted" if isinstance(exc, KeyboardInterrupt) else _one_line(exc)
        print(f"error: {msg}", file=sys.stderr)
        return 2 if isinstance(exc, OSError) else 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
