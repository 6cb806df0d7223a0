"""The one gate's command: compare a result of matrix configurations with a committed baseline.

``python -m newllm.tools.gate RESULT --baseline FILE`` (RESULT: a ``newllm-matrix/1`` file or a
pytest-benchmark JSON, :mod:`newllm.matrix.baseline`). The decisions (binomial test on rates, stated slack on costs) are :mod:`newllm.matrix.gate`'s.

A regression fails; so does an unexplained improvement (regenerate the baseline if it is intended,
or pass ``--allow-improvements``) and a baseline configuration missing from the result
(``--allow-missing`` for a partial run). Exit 0: pass; 1: a failure (each line names the
configuration and the numbers); 2: an unreadable or malformed file.
``--write-baseline FILE`` writes RESULT's configurations as a new baseline instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..matrix import baseline as B
from ..matrix.gate import ALPHA, SLACK, compare


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m newllm.tools.gate", description=__doc__.split("\n\n")[0])
    p.add_argument("result", help="a newllm-matrix/1 file or a pytest-benchmark JSON (--benchmark-json)")
    p.add_argument("--baseline", help="the committed baseline to compare with")
    p.add_argument("--write-baseline", metavar="FILE", help="write RESULT as a new baseline and exit")
    p.add_argument("--command", default="", help="the command that produced RESULT (kept in a new baseline)")
    p.add_argument(
        "--allow-missing", action="store_true", help="a partial run: missing configurations are notes"
    )
    p.add_argument("--allow-improvements", action="store_true", help="better-than-baseline counts are notes")
    a = p.parse_args(argv)
    try:
        result = B.read(a.result)
        if a.write_baseline:
            return write_baseline(result, a.write_baseline, a.command)
        if not a.baseline:
            raise B.FormatError("give --baseline FILE (or --write-baseline FILE)")
        base = B.read(a.baseline)
    except B.FormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures, notes = compare(
        result, base, allow_missing=a.allow_missing, allow_improvements=a.allow_improvements
    )
    for line in notes:
        print(f"note: {line}")
    if failures:
        print(f"FAIL: {len(failures)} finding(s) against {a.baseline}:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(
        f"OK: {len(base['configurations'])} configurations of {a.baseline} within the gate "
        f"(binomial alpha {ALPHA}; cost slack {SLACK.describe()})"
    )
    return 0


def write_baseline(result: dict[str, Any], path: str, command: str) -> int:
    if not result["configurations"]:
        raise B.FormatError(f"the result holds no configuration to write to {path}")
    doc = B.document(
        result["configurations"],
        result["settings"],
        about=f"newllm baseline; regenerate: {command or 'ci/regenerate-baselines'}",
        command=command,
    )
    B.write(path, doc)
    print(f"wrote {path} ({len(doc['configurations'])} configurations)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
