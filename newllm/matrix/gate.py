"""The one gate's decisions: a configuration's counts against its baseline entry.

Per configuration (both entries of :mod:`newllm.matrix.baseline`'s format):

* ``tokens`` must be equal, and so must the configuration's settings (else the baseline is stale).
* **Rate**: with ``k`` of ``n`` tokens converged now and baseline rate ``p = k_base / n``, a
  regression is ``P(X <= k + f) < ALPHA`` for ``X ~ Binomial(n, p)`` (one-sided exact test,
  :func:`newllm.stats.binomial_cdf`), an improvement ``P(X >= k - f) < ALPHA``; ``f`` tokens may flip
  by float rounding (:data:`FLIPS`, :data:`SENSITIVE_FLIPS` for ``rounding_sensitive`` entries).
* **Costs** (:data:`~newllm.matrix.baseline.COSTS`: mean iterations, mean evaluations, Phase 1 epochs
  and optimizer steps): worse when above ``base + REL * base + ABS + PER_TOKEN / n``, better when below
  ``base - (the same slack)``.

Used by ``python -m newllm.tools.gate`` (files), property family 4 and ``newllm.testing``'s
``convergence`` check (one model against its baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..stats import binomial_cdf, binomial_sf
from . import baseline as B

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
