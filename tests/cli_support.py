"""Running the CLI in-process and checking the bad-input contract: exit 0, or exit 2 with exactly one
``error:`` line on stderr (``warning:`` lines aside), never a traceback; nothing written outside --out."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from newllm.cli.main import main


@dataclass
class Outcome:
    argv: list[str]
    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        """stderr's lines as a terminal shows them (progress redraws after ``\\r`` dropped), warnings aside."""
        shown = [line.split("\r")[-1] for line in self.err.split("\n")]
        return [line for line in shown if line.strip() and not line.startswith("warning: ")]

    def check(self, also: tuple[int, ...] = ()) -> None:
        """The contract: exit 0, or 2 with one ``error:`` line; never a traceback. ``also``: further exit
        codes a command documents (``newllm verify``: 1 = a check failed)."""
        assert "Traceback" not in self.err, (self.argv, self.err)
        assert self.code in (0, 2, *also), (self.argv, self.code, self.err)
        if self.code == 2:
            lines = self.lines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (self.argv, self.err)

    def error(self, *needles: str) -> str:
        """The one error line, checked to hold every needle."""
        assert self.code == 2, (self.argv, self.code, self.out, self.err)
        self.check()
        line = self.lines()[0]
        for n in needles:
            assert n in line, (self.argv, n, line)
        return line


def run(argv: Sequence[object]) -> Outcome:
    """``newllm ARGV`` in this process; ``--help``/``--version`` exits count as code 0."""
    args = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = 0 if exc.code in (0, None) else int(exc.code)  # type: ignore[arg-type]
    return Outcome(args, code, out.getvalue(), err.getvalue())


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def written_outside(before: dict, after: dict, allowed: Iterable[str]) -> list[str]:
    """Paths created or changed between two snapshots that are not under an allowed prefix."""
    prefixes = tuple(a.rstrip("/") + "/" for a in allowed)
    changed = [p for p, v in after.items() if before.get(p) != v]
    return [p for p in changed if not (p + "/").startswith(prefixes)]
