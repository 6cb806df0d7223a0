"""The command line's boundary: argument types with stated bounds, output paths checked before any work,
which flags were given, and warnings for flags that do nothing.

Every number a flag takes goes through :func:`integer` or :func:`number` (a test checks that no flag
uses plain ``int``/``float``), so that a value out of range is one ``error:`` line naming the flag,
the value and the bound -- before it reaches a config or torch. Output paths go through
:func:`out_dir` / :func:`out_file`, checked at parse time, so that a long run never ends on an output
path it cannot write.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..textfiles import blocking_file

#: Seeds: what torch and the configs accept.
SEED_MAX = 2**63 - 1
#: The largest vocabulary a ModelConfig accepts (token ids are below it).
VOCAB_MAX = 10_000_000


def _range_text(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    left, right = "(" if lo_open or lo is None else "[", ")" if hi_open or hi is None else "]"
    return f"{left}{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}{right}"


def integer(lo: int, hi: int) -> Callable[[str], int]:
    """argparse type: an integer in ``[lo, hi]`` (the error states the bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer in [{lo}, {hi}], got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in [{lo}, {hi}], got {text}")
        return value

    parse.__name__ = f"integer[{lo}, {hi}]"
    parse.bounds = (lo, hi)  # type: ignore[attr-defined]
    return parse


def number(
    lo: float | None, hi: float | None, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """argparse type: a finite real number in the interval (open ends excluded; the error states it)."""
    where = _range_text(lo, hi, lo_open, hi_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {where}, got {text!r}") from None
        bad = (
            not math.isfinite(value)
            or (lo is not None and (value <= lo if lo_open else value < lo))
            or (hi is not None and (value >= hi if hi_open else value > hi))
        )
        if bad:
            raise argparse.ArgumentTypeError(f"expected a finite number in {where}, got {text}")
        return value

    parse.__name__ = f"number{where}"
    parse.bounds = (lo, hi)  # type: ignore[attr-defined]
    parse.open_ends = (lo_open, hi_open)  # type: ignore[attr-defined]
    return parse


def integers(lo: int, hi: int) -> Callable[[str], tuple[int, ...]]:
    """argparse type: ``"100,200"`` -> ``(100, 200)``, every item an integer in ``[lo, hi]``."""

    def parse(text: str) -> tuple[int, ...]:
        items = [t.strip() for t in text.split(",")]
        if not text.strip() or any(not t for t in items):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {text!r}")
        out = []
        for t in items:
            try:
                v = int(t)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{t!r} is not an integer (in {text!r})") from None
            if not lo <= v <= hi:
                raise argparse.ArgumentTypeError(f"{t} is out of range: expected integers in [{lo}, {hi}]")
            out.append(v)
        return tuple(out)

    parse.__name__ = f"integers[{lo}, {hi}]"
    parse.bounds = (lo, hi)  # type: ignore[attr-defined]
    return parse


SEED = integer(0, SEED_MAX)


def _blocking_parent(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a directory (None: every existing one is)."""
    return blocking_file(path.parent) if path.parent != path else None


def out_dir(text: str) -> str:
    """argparse type: a directory to write into, existing or to be made (not a file, not under a file)."""
    path = Path(text).expanduser()
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a directory path, got ''")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file: expected a directory (new or existing)")
    blocker = _blocking_parent(path)
    if blocker is not None:
        raise argparse.ArgumentTypeError(
            f"cannot make directory {text!r}: {str(blocker)!r} is a file, not a directory"
        )
    return text


def out_file(suffix: str | None = None) -> Callable[[str], str]:
    """argparse type: a file to write (parents are made), not a directory; with ``suffix``, ending in it."""

    def parse(text: str) -> str:
        path = Path(text).expanduser()
        if not text.strip() or text.endswith(("/", "\\")) or path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a directory: expected a file path")
        if suffix is not None and path.suffix.lower() != suffix:
            raise argparse.ArgumentTypeError(f"expected a file path ending in {suffix}, got {text!r}")
        blocker = _blocking_parent(path)
        if blocker is not None:
            raise argparse.ArgumentTypeError(
                f"cannot write {text!r}: {str(blocker)!r} is a file, not a directory"
            )
        return text

    parse.__name__ = "out_file"
    return parse


def refuse_same_file(outputs: dict[str, str | None], inputs: Sequence[str]) -> None:
    """ValueError when an output flag names one of the ``inputs`` or another output (it would overwrite it)."""
    seen: dict[Path, str] = {Path(p).expanduser().resolve(): f"input {p!r}" for p in inputs}
    for flag, value in outputs.items():
        if value is None:
            continue
        key = Path(value).expanduser().resolve()
        if key in seen:
            raise ValueError(f"{flag} {value!r} is the same file as the {seen[key]}: it would be overwritten")
        seen[key] = f"{flag} path"


# --- which flags were given ---------------------------------------------------------------------------

GIVEN = "_given"


def _recording(base: type[argparse.Action]) -> type[argparse.Action]:
    class Recording(base):  # type: ignore[valid-type, misc]
        def __call__(
            self, parser: Any, namespace: Any, values: Any, option_string: str | None = None
        ) -> None:
            super().__call__(parser, namespace, values, option_string)
            given = set(getattr(namespace, GIVEN, ()))
            given.add(self.dest)
            setattr(namespace, GIVEN, given)

    Recording.__name__ = f"Recording{base.__name__}"
    return Recording


#: argparse's own actions, replaced in every newllm parser by ones that also record their dest.
RECORDED = {
    "store": argparse._StoreAction,
    "store_const": argparse._StoreConstAction,
    "store_true": argparse._StoreTrueAction,
    "store_false": argparse._StoreFalseAction,
    "append": argparse._AppendAction,
}


def record_given(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` (and its groups) remember which options the command line gave: :func:`given`."""
    for name, cls in RECORDED.items():
        parser.register("action", name, _recording(cls))
    parser.register("action", None, _recording(argparse._StoreAction))


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the command line gave the option stored in ``dest`` (not its default)."""
    return dest in getattr(args, GIVEN, ())


def flag_of(dest: str) -> str:
    return "--" + dest.replace("_", "-")


# --- warnings -------------------------------------------------------------------------------------------


def warn(message: str) -> None:
    """One ``warning: ...`` line on stderr (shown with --quiet too; never on stdout)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Ignored:
    """Flags (dests) that do nothing when ``when(args)`` holds; ``why`` completes "--flag does nothing ..."."""

    dests: tuple[str, ...]
    when: Callable[[argparse.Namespace], bool]
    why: str


def warn_ignored(args: argparse.Namespace, rules: Sequence[Ignored]) -> list[str]:
    """A warning for every given flag that a rule says does nothing here; returns the flags warned about."""
    out = []
    for rule in rules:
        if not rule.when(args):
            continue
        for dest in rule.dests:
            if given(args, dest):
                warn(f"{flag_of(dest)} does nothing {rule.why}")
                out.append(flag_of(dest))
    return out
