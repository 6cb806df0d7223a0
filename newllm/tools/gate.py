"""The one gate: compare a result of matrix configurations with a committed baseline.

``python -m newllm.tools.gate RESULT --baseline FILE`` (RESULT: a ``newllm-matrix/1`` file or a
pytest-benchmark JSON, :mod:`newllm.matrix.baseline`). Per configuration:

* ``tokens`` must be equal, and so must the configuration's settings and the file's settings
  (else the baseline is stale: regenerate it).
* **Rate**: with ``k`` of ``n`` tokens converged now and baseline rate ``p = k_base / n``, a
  regression is ``P(X <= k + f) < ALPHA`` for ``X ~ Binomial(n, p)`` (one-sided exact test,
  :func:`newllm.stats.binomial_cdf`), an improvement ``P(X >= k - f) < ALPHA``; ``f`` tokens may flip
  by float rounding (:data:`FLIPS`, :data:`SENSITIVE_FLIPS` for ``rounding_sensitive`` entries).
* **Costs** (:data:`~newllm.matrix.baseline.COSTS`: mean iterations, mean evaluations, Phase 1 epochs
  and optimizer steps): worse when above ``base + REL * base + ABS + PER_TOKEN / n``, better when below
  ``base - (the same slack)``.

A regression fails; so does an unexplained improvement (regenerate the baseline if it is intended,
or pass ``--allow-improvements``) and a baseline configuration missing from the result
(``--allow-missing`` for a partial run). Exit 0: pass; 1: a failure (each line names the
configuration and the numbers); 2: an unreadable or malformed file.
``--write-baseline FILE`` writes RESULT's configurations as a new baseline instead.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from ..matrix import baseline as B
from ..stats import binomial_cdf, binomial_sf

ALPHA = 0.01
FLIPS = 1
SENSITIVE_FLIPS = 3


@dataclass(frozen=True)
class Slack:
    """How far a cost may move before the gate calls it changed: ``rel * |base| + abs + per_token / n``."""

    rel: float
    abs: float
    per_token: float

    def of(self, base: float, tokens: int) -> float:
        return self.rel * abs(base) + self.abs + (self.per_token / tokens if tokens else 0.0)

    def describe(self) -> str:
        return f"{self.rel:.0%} + {self.abs:g} + {self.per_token:g}/tokens"


#: Absorbs float-rounding differences between machines (a token near its threshold may stop an
#: iteration earlier or later), not behaviour changes.
SLACK = Slack(rel=0.02, abs=0.02, per_token=2.0)
#: Anderson at ``rel < 1e-4``: its least squares amplify rounding (rerun with other CPU kernels, its
#: counts moved by up to 12 iterations on 1 token, 3.2 mean iterations on 10 and 0.02 rate on 100).
SENSITIVE_SLACK = Slack(rel=0.08, abs=0.5, per_token=40.0)


def rate_check(name: str, base: dict[str, Any], now: dict[str, Any]) -> tuple[str, str] | None:
    """``("REGRESSION" | "IMPROVED", line)`` when the converged count moved beyond chance, else None."""
    n, k, kb = now["tokens"], now["converged"], base["converged"]
    f = SENSITIVE_FLIPS if base.get("rounding_sensitive") else FLIPS
    p = kb / n if n else 0.0
    low = binomial_cdf(min(k + f, n), n, p)
    high = binomial_sf(max(k - f, 0), n, p)
    test = f"exact one-sided binomial test vs the baseline rate, {f} token(s) of rounding allowed"
    if low < ALPHA:
        return (
            "REGRESSION",
            f"{name}: converged {kb}/{n} -> {k}/{n} (P(X <= {k}+{f}) = {low:.3g} < alpha {ALPHA}; {test})",
        )
    if high < ALPHA:
        return (
            "IMPROVED",
            f"{name}: converged {kb}/{n} -> {k}/{n} (P(X >= {k}-{f}) = {high:.3g} < alpha {ALPHA}; {test})",
        )
    return None


def cost_checks(name: str, base: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    slack = SENSITIVE_SLACK if base.get("rounding_sensitive") else SLACK
    for key in B.COSTS:
        if key not in base:
            continue
        if key not in now:
            out.append(("MISSING", f"{name}: {key} (baseline {base[key]:g}) not in the result"))
            continue
        b, v = float(base[key]), float(now[key])
        s = slack.of(b, base["tokens"])
        if not v <= b + s:
            out.append(
                ("REGRESSION", f"{name}: {key} {b:g} -> {v:g} (allowed <= {b + s:.4g}: {slack.describe()})")
            )
        elif v < b - s:
            out.append(
                ("IMPROVED", f"{name}: {key} {b:g} -> {v:g} (beyond the slack {s:.3g}: {slack.describe()})")
            )
    return out


def per_token_note(base: dict[str, Any], now: dict[str, Any]) -> str:
    a, b = base.get("iterations"), now.get("iterations")
    if not a or not b or len(a) != len(b):
        return ""
    moved = [f"#{i}: {x} -> {y}" for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return f" [per-token iterations {', '.join(moved)}]" if moved else ""


def check(name: str, base: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, str]]:
    """Every finding for one configuration: ``(kind, line)`` with kind REGRESSION, IMPROVED, CHANGED
    or MISSING."""
    if base.get("settings", {}) != now.get("settings", {}):
        diff = _diff(base.get("settings", {}), now.get("settings", {}))
        return [("CHANGED", f"{name}: made under other settings ({diff}): regenerate the baseline")]
    if now["tokens"] != base["tokens"]:
        return [("CHANGED", f"{name}: tokens {base['tokens']} -> {now['tokens']} (must be equal)")]
    found = [r for r in [rate_check(name, base, now)] if r] + cost_checks(name, base, now)
    if found:  # the per-token iterations, once per configuration
        found[0] = (found[0][0], found[0][1] + per_token_note(base, now))
    return found


def compare(
    result: dict[str, Any],
    baseline: dict[str, Any],
    *,
    allow_missing: bool = False,
    allow_improvements: bool = False,
) -> tuple[list[str], list[str]]:
    """``(failures, notes)`` of ``result`` against ``baseline`` (both documents of the one format)."""
    failures: list[str] = []
    notes: list[str] = []
    if result["settings"] != baseline["settings"]:
        diff = _diff(baseline["settings"], result["settings"])
        failures.append(
            f"CHANGED settings: the baseline was made under other settings ({diff}): regenerate it"
        )
    now = result["configurations"]
    for name, base in sorted(baseline["configurations"].items()):
        if name not in now:
            (notes if allow_missing else failures).append(
                f"MISSING {name}: in the baseline, not in the result"
            )
            continue
        for kind, line in check(name, base, now[name]):
            improved = kind == "IMPROVED"
            text = f"{kind} {line}" + (
                "; unexplained: regenerate the baseline if intended" if improved else ""
            )
            (notes if improved and allow_improvements else failures).append(text)
    for name in sorted(set(now) - set(baseline["configurations"])):
        notes.append(f"NEW {name}: not in the baseline")
    return failures, notes


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return "; ".join(f"{k}: baseline {a.get(k)!r}, now {b.get(k)!r}" for k in keys[:4]) or "equal"


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
