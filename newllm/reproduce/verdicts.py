"""Verdicts from numbers: a claimed value against per-seed measurements, never written by hand.

Tolerances come from the claims data, per quantity: ``abs`` and/or ``rel`` give a band
``|x - claimed| <= max(abs, rel * |claimed|)``; ``factor`` gives ``max(x/claimed, claimed/x) <= factor``.

Per variant (one set of conditions), with one value per seed:

* ``approx``: **holds** when the seed mean is within tolerance of the claim; **does not hold** when no
  seed is; otherwise **inconclusive** (the seeds disagree).
* ``at_least`` / ``below`` / ``above`` / ``range``: checked per seed (``x >= c``, ``x < c``, ``x > c``,
  ``lo <= x <= hi``, no tolerance): holds when every seed passes, does not hold when none does,
  otherwise inconclusive.
* paired ``less`` / ``greater`` (``a < b`` / ``a > b`` per seed), ``equal`` (``a`` within tolerance of
  ``b`` per seed): likewise every seed / no seed / some seeds. ``ratio``: ``a / b`` per seed, then ``approx``.

Over variants: all hold -> **holds**; all do not hold -> **does not hold**; some hold -> **holds only
under:** the labels of those that hold (naming any inconclusive ones); none holds and some are
inconclusive -> **inconclusive**. Variants without measurements are left out (**not measured** when
none has any).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HOLDS = "holds"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"
HOLDS_ONLY = "holds only under"


@dataclass(frozen=True)
class Stat:
    """Per-seed values of one measurement and their summary (sample std; 0 for one seed)."""

    seeds: tuple[Any, ...]
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n

    @property
    def std(self) -> float:
        if self.n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "n": self.n,
            "seeds": list(self.seeds),
            "values": list(self.values),
        }


def stat(per_seed: dict[Any, float | None]) -> Stat | None:
    """A :class:`Stat` of the finite values, seeds in sorted order; None when there are none."""
    items = sorted(
        (s, float(v)) for s, v in per_seed.items() if isinstance(v, int | float) and math.isfinite(float(v))
    )
    if not items:
        return None
    return Stat(seeds=tuple(s for s, _ in items), values=tuple(v for _, v in items))


@dataclass(frozen=True)
class Verdict:
    status: str
    detail: str
    measured: dict[str, Any] = field(default_factory=dict)


def within(x: float, claimed: float, tol: dict[str, float]) -> bool:
    """``x`` agrees with ``claimed`` under the tolerance spec (see the module doc)."""
    if "factor" in tol:
        if x <= 0 or claimed <= 0:
            return x == claimed
        return max(x / claimed, claimed / x) <= tol["factor"] * (1 + 1e-12)
    width = max(tol.get("abs", 0.0), tol.get("rel", 0.0) * abs(claimed))
    return abs(x - claimed) <= width + 1e-12 * max(1.0, abs(claimed))


def describe_tolerance(tol: dict[str, float]) -> str:
    if "factor" in tol:
        return f"within a factor {tol['factor']:g}"
    parts = []
    if "abs" in tol:
        parts.append(f"±{tol['abs']:g}")
    if "rel" in tol:
        parts.append(f"±{100 * tol['rel']:g}%")
    return "max(" + ", ".join(parts) + ")" if len(parts) > 1 else (parts[0] if parts else "exact")


def _count(ok: Sequence[bool]) -> str:
    k, n = sum(ok), len(ok)
    if k == n:
        return HOLDS
    return FAILS if k == 0 else INCONCLUSIVE


def judge_single(test: str, claimed: Any, s: Stat | None, tol: dict[str, float]) -> Verdict:
    """Verdict of one single-measurement variant."""
    if s is None:
        return Verdict(NOT_MEASURED, "no measurement in this run")
    m = {"stat": s.to_dict()}
    if test == "approx":
        if within(s.mean, claimed, tol):
            status = HOLDS
        elif not any(within(v, claimed, tol) for v in s.values):
            status = FAILS
        else:
            status = INCONCLUSIVE
        return Verdict(status, f"mean {_fmt(s.mean)} vs {_fmt(claimed)} ({describe_tolerance(tol)})", m)
    if test == "range":
        lo, hi = claimed
        ok = [lo <= v <= hi for v in s.values]
        return Verdict(_count(ok), f"{sum(ok)}/{len(ok)} seeds in [{_fmt(lo)}, {_fmt(hi)}]", m)
    ops = {"at_least": (lambda v: v >= claimed, ">="), "below": (lambda v: v < claimed, "<"),
           "above": (lambda v: v > claimed, ">")}  # fmt: skip
    if test not in ops:
        raise ValueError(
            f"unknown single-measurement test {test!r}; expected approx, range, {', '.join(ops)}"
        )
    fn, sym = ops[test]
    ok = [fn(v) for v in s.values]
    return Verdict(_count(ok), f"{sum(ok)}/{len(ok)} seeds {sym} {_fmt(claimed)}", m)


def judge_paired(test: str, claimed: Any, a: Stat | None, b: Stat | None, tol: dict[str, float]) -> Verdict:
    """Verdict of one paired variant; seeds measured on both sides are compared."""
    if a is None or b is None:
        return Verdict(NOT_MEASURED, "no measurement in this run")
    bv = dict(zip(b.seeds, b.values, strict=True))
    pairs = [(s, x, bv[s]) for s, x in zip(a.seeds, a.values, strict=True) if s in bv]
    if not pairs:
        return Verdict(NOT_MEASURED, "no seed measured on both sides")
    m = {"a": a.to_dict(), "b": b.to_dict()}
    if test == "ratio":
        r = {s: (x / y if y != 0 else math.inf) for s, x, y in pairs}
        rs = stat(r)
        v = judge_single("approx", claimed, rs, tol)
        return Verdict(v.status, "ratio " + v.detail, {**m, "ratio": rs.to_dict() if rs else None})
    if test == "less":
        ok, sym = [x < y for _, x, y in pairs], "<"
    elif test == "greater":
        ok, sym = [x > y for _, x, y in pairs], ">"
    elif test == "equal":
        ok, sym = [within(x, y, tol) for _, x, y in pairs], f"= ({describe_tolerance(tol)})"
    else:
        raise ValueError(f"unknown paired test {test!r}; expected less, greater, equal or ratio")
    ma, mb = sum(x for _, x, _ in pairs) / len(pairs), sum(y for _, _, y in pairs) / len(pairs)
    return Verdict(_count(ok), f"{sum(ok)}/{len(ok)} seeds a {sym} b (means {_fmt(ma)} vs {_fmt(mb)})", m)


def combine(labelled: Sequence[tuple[str, Verdict]]) -> tuple[str, str]:
    """Overall ``(status, text)`` of a claim from its variants' verdicts (see the module doc)."""
    measured = [(lab, v) for lab, v in labelled if v.status != NOT_MEASURED]
    if not measured:
        return NOT_MEASURED, NOT_MEASURED
    sts = [v.status for _, v in measured]
    if all(s == HOLDS for s in sts):
        return HOLDS, HOLDS
    if all(s == FAILS for s in sts):
        return FAILS, FAILS
    under = [lab for lab, v in measured if v.status == HOLDS]
    unsure = [lab for lab, v in measured if v.status == INCONCLUSIVE]
    if not under:
        return INCONCLUSIVE, f"{INCONCLUSIVE} (seeds disagree under: " + "; ".join(unsure) + ")"
    text = f"{HOLDS_ONLY}: " + "; ".join(under)
    if unsure:
        text += " (seeds disagree under: " + "; ".join(unsure) + ")"
    return HOLDS_ONLY, text


CONSISTENT = "consistent"
INCONSISTENT = "inconsistent"


def check_consistency(entry: dict[str, Any]) -> dict[str, Any]:
    """An internal check of a note's own numbers (rules ``mean_of``, ``at_cap``, ``below``, ``equal``,
    ``less``); returns ``{"status": consistent|inconsistent, "detail": ...}``."""
    rule = entry["rule"]
    if rule == "mean_of":
        vals = entry["values"]
        mean = sum(vals) / len(vals)
        ok = abs(mean - entry["claimed"]) <= 0.05 + 1e-9
        detail = f"mean of the list {_fmt(mean)} vs stated {_fmt(entry['claimed'])}"
    elif rule == "at_cap":
        v = entry["values"][entry["position"] - 1]
        ok = v == entry["cap"]
        at = [i + 1 for i, x in enumerate(entry["values"]) if x == entry["cap"]]
        detail = f"entry #{entry['position']} is {_fmt(v)}; entries at the cap {entry['cap']}: {at}"
    elif rule == "below":
        bad = [v for v in entry["values"] if not v < entry["bound"]]
        ok = not bad
        detail = f"{len(bad)}/{len(entry['values'])} values not below {_fmt(entry['bound'])}: {bad}"
    elif rule == "equal":
        a, b = _value(entry["a"]), _value(entry["b"])
        ok = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        detail = f"{_fmt(a)} vs {_fmt(b)}"
    elif rule == "less":
        pairs = list(zip(entry["a"], entry["b"], strict=True))
        labels = entry.get("labels") or [str(i) for i in range(len(pairs))]
        bad = [lab for lab, (x, y) in zip(labels, pairs, strict=True) if not x < y]
        ok = not bad
        detail = (
            f"fails at {len(bad)}/{len(pairs)}: {', '.join(bad)}" if bad else f"holds at all {len(pairs)}"
        )
    else:
        raise ValueError(f"unknown consistency rule {rule!r}; expected mean_of, at_cap, below, equal or less")
    return {"status": CONSISTENT if ok else INCONSISTENT, "detail": detail}


def _value(v: Any) -> float:
    if isinstance(v, dict) and "divide" in v:
        x, y = v["divide"]
        return x / y
    return float(v)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        if x == 0 or (1e-3 <= abs(x) < 1e5):
            return f"{x:.4g}"
        return f"{x:.3g}"
    return str(x)
