"""Entry point: builds the parser from the subcommand modules, turns bad input into exit 2 + one line.

Failure classes and what the user sees (stderr; stdout holds only results):

==============================================  =====================================================  ====
class                                           line                                                   exit
==============================================  =====================================================  ====
bad arguments (parser, bounds, output paths)    ``error: newllm CMD: argument --flag: expected ...``    2
an argument that is not UTF-8                   ``error: argument N (...) is not UTF-8 text ...``       2
bad input files, configs, run directories       ``error: <file>: <what> ...`` (ValueError)              2
operating-system errors (permissions, disk)     ``error: <strerror>: <path>`` (OSError)                 2
a model too large for memory                    ``error: out of memory: ...``                           2
Ctrl-C                                          ``error: interrupted ...; continue with: ...``          130
stdout closed by the reader (``| head``)        nothing                                                 141
==============================================  =====================================================  ====

Flags that do nothing in context get one ``warning: ...`` line each (:mod:`newllm.cli.args`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from .. import __version__
from . import args as A
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

#: Subcommand modules; each has ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``,
#: and may have ``IGNORED`` (a list of :class:`newllm.cli.args.Ignored`: flags that do nothing in context).
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


_OOM = re.compile(r"can't allocate memory|out of memory", re.I)
_ALLOC = re.compile(r"allocate (\d+) bytes")


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        A.record_given(self)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="newllm", description="Context-vector fixed-point (CVFP) language model toolkit.")
    parser.add_argument("--version", action="version", version=f"newllm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in COMMANDS:
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _ignored=getattr(mod, "IGNORED", ()))
    return parser


def check_utf8(argv: Sequence[str]) -> None:
    """UsageError for an argument holding bytes that are not UTF-8 (Python hands them over as lone
    surrogates): newllm reads, prints and stores every argument as UTF-8 text."""
    for i, a in enumerate(argv, start=1):
        try:
            a.encode("utf-8")
        except UnicodeEncodeError as exc:
            shown = a.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise UsageError(
                f"argument {i} ({shown!r}) is not UTF-8 text (byte at position {exc.start}): "
                "newllm takes UTF-8 arguments only"
            ) from None


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_streams()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        check_utf8(argv)
        args = build_parser().parse_args(argv)
        args._argv = argv  # for the `--resume` line after Ctrl-C
        if getattr(args, "_run", None) is None:
            build_parser().print_help(sys.stderr)
            return 2
        A.warn_ignored(args, args._ignored)
        return int(args._run(args) or 0)
    except UsageError as exc:
        return _error(str(exc))
    except ValueError as exc:
        return _error(_one_line(exc))
    except MemoryError as exc:
        return _error(f"out of memory: {_one_line(exc)}")
    except RuntimeError as exc:
        if not _OOM.search(str(exc)):
            raise
        size = _ALLOC.search(str(exc))
        return _error(
            "out of memory"
            + (f" (tried to allocate {int(size.group(1)) / 2**30:.1f} GiB)" if size else "")
            + ": use a smaller model (--dim, --vocab-size, --layers) or fewer tokens"
        )
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except (OSError, KeyboardInterrupt) as exc:
        msg = "interrupted" if isinstance(exc, KeyboardInterrupt) else _one_line(exc)
        _error(msg)
        return 2 if isinstance(exc, OSError) else 130


def _error(message: str) -> int:
    print(f"error: {printable(message)}", file=sys.stderr, flush=True)
    return 2


def printable(text: str) -> str:
    """``text`` on one terminal line: control characters (newlines, ANSI escapes, ...) from arguments or
    file names shown escaped, as ``repr`` shows them."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _tolerant_streams() -> None:
    """Text that the terminal's encoding cannot show is escaped (``\\u2019``), never a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that Python's exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
