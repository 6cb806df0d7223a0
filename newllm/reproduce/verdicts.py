"""Verdicts from numbers: a claimed value against per-seed measurements, never written by hand.

**Slack** (per quantity, from the claims data): ``abs`` and/or ``rel`` give the band
``claimed ± max(abs, rel * |claimed|)``; ``factor`` gives ``claimed ×/÷ factor``, and then every
comparison is made on the log scale. The slack absorbs the notes' rounding ("~16", "75.8%").

**Two questions.** Per variant (one set of conditions) the per-seed values give a 95% *interval* of
the typical value (:meth:`Stat.interval`: Wilson over seeds for rates, t otherwise) and a 95%
*prediction range* for one new seed (:meth:`Stat.prediction`). A claim names the question its
primary verdict answers:

* ``single_run``: is the note's number a plausible single run? ``approx``: **holds** when the
  claimed band meets the prediction range, else **does not hold**.
* ``typical``: is it the architecture's typical value? ``approx``: **holds** when the interval lies
  inside the claimed band, **does not hold** when it lies outside it, else **inconclusive**.

Inequalities (``at_least``, ``below``, ``above``) hold when the whole interval (range) lies on the
claimed side, fail when it lies on the other side, else are inconclusive; ``range`` is ``approx``
with a band ``[lo, hi]``. Paired tests compare ``a`` and ``b`` seed by seed: the interval of the
mean difference lies below 0 (``less``), above 0 (``greater``), inside ``± slack`` (``equal``), or
the per-seed ratios ``a / b`` are judged as ``approx`` (``ratio``). Fewer than two seeds give no t
interval: **inconclusive**.

**Over variants** (:func:`combine`): the note's own reading (its variants, all of which must hold)
decides the primary verdict, holds / does not hold / inconclusive. The other conditions are
reported beside it, never as a rescue: *holds only under* (other variants that hold when the primary
does not) and *fails only under* (other variants that fail when the primary does not fail). A
training claim whose untrained control passes the same test is tagged *holds trivially*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import stats

HOLDS = "holds"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"
OUTCOMES = (HOLDS, FAILS, INCONCLUSIVE)
HOLDS_ONLY = "holds only under"
FAILS_ONLY = "fails only under"
TRIVIAL = "holds trivially (untrained control passes too)"

SINGLE_RUN = "single_run"
TYPICAL = "typical"
QUESTIONS = (SINGLE_RUN, TYPICAL)
LEVEL = stats.LEVEL
#: Relative float allowance of every comparison (a claim equal to a bound is on the bound).
EPS = 1e-12


@dataclass(frozen=True)
class Stat:
    """Per-seed values of one measurement. ``counts``/``tokens`` (per seed) make it a rate: its
    interval and prediction range are then the binomial-over-seeds ones of :mod:`newllm.stats`.
    ``exact``: a computed constant (no spread), its interval is the value itself."""

    seeds: tuple[Any, ...]
    values: tuple[float, ...]
    counts: tuple[int, ...] | None = None
    tokens: tuple[int, ...] | None = None
    exact: bool = False

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / self.n

    @property
    def std(self) -> float:
        if self.n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(math.fsum((v - m) ** 2 for v in self.values) / (self.n - 1))

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    @property
    def is_rate(self) -> bool:
        return self.counts is not None

    def _binomial(self) -> tuple[list[int], list[int]] | None:
        """(converged, tokens) per seed for a rate, else None."""
        if self.counts is None or self.tokens is None:
            return None
        return list(self.counts), list(self.tokens)

    def interval(self, log: bool = False) -> stats.Interval | None:
        """95% interval of the typical value (on the log scale when ``log``); None with one
        non-rate seed or a non-positive value on the log scale."""
        if self.exact:
            return _point(self.values, log)
        b = self._binomial()
        if b is not None and not log:
            return stats.rate_interval(*b)
        xs = _scaled(self.values, log)
        return None if xs is None or len(xs) < 2 else stats.mean_interval(xs)

    def prediction(self, log: bool = False) -> stats.Interval | None:
        """95% range of one new seed's value (log scale when ``log``); None when not computable."""
        if self.exact:
            return _point(self.values, log)
        b = self._binomial()
        if b is not None and not log:
            return stats.rate_prediction_range(*b, round(sum(b[1]) / len(b[1])))
        xs = _scaled(self.values, log)
        return None if xs is None or len(xs) < 2 else stats.prediction_range(xs)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "n_seeds": self.n,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "seeds": list(self.seeds),
            "values": list(self.values),
        }
        b = self._binomial()
        if b is not None:
            out.update(converged=b[0], tokens=b[1])
        return out


def _scaled(values: Sequence[float], log: bool) -> list[float] | None:
    if not log:
        return list(values)
    return None if any(v <= 0 for v in values) else [math.log(v) for v in values]


def _point(values: Sequence[float], log: bool) -> stats.Interval | None:
    xs = _scaled(values, log)
    return None if xs is None else stats.Interval(min(xs), max(xs), 1.0, "exact")


def stat(
    per_seed: dict[Any, Any], counts: dict[Any, tuple[int, int]] | None = None, *, exact: bool = False
) -> Stat | None:
    """A :class:`Stat` of the finite values, seeds in sorted order (None when there are none).
    ``counts`` maps a seed to ``(converged, tokens)``: given for every kept seed, the stat is a rate."""
    items = sorted(
        (s, float(v))
        for s, v in per_seed.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    )
    if not items:
        return None
    seeds = tuple(s for s, _ in items)
    k = n = None
    if counts is not None and all(s in counts for s in seeds):
        k = tuple(int(counts[s][0]) for s in seeds)
        n = tuple(int(counts[s][1]) for s in seeds)
    return Stat(seeds=seeds, values=tuple(v for _, v in items), counts=k, tokens=n, exact=exact)


# ----------------------------------------------------------------------------- slack


@dataclass(frozen=True)
class Band:
    """``claimed ± slack`` on the comparison scale (log when the slack is a factor)."""

    log: bool
    lower: float
    upper: float
    width: float


def band(claimed: float | Sequence[float], slack: dict[str, float]) -> Band:
    """The band of a claimed value (or ``[lo, hi]`` range) under ``slack`` (see the module doc)."""
    lo, hi = (claimed, claimed) if isinstance(claimed, int | float) else claimed
    if "factor" in slack:
        if lo <= 0:
            raise ValueError(f"a factor slack needs a positive claimed value, got {claimed!r}")
        w = math.log(slack["factor"])
        return Band(True, math.log(lo) - w, math.log(hi) + w, w)
    w = max(slack.get("abs", 0.0), slack.get("rel", 0.0) * max(abs(lo), abs(hi)))
    return Band(False, lo - w, hi + w, w)


def describe_slack(slack: dict[str, float]) -> str:
    if "factor" in slack:
        return f"×/÷ {slack['factor']:g}"
    parts = ([f"±{slack['abs']:g}"] if "abs" in slack else []) + (
        [f"±{100 * slack['rel']:g}%"] if "rel" in slack else []
    )
    return " or ".join(parts) if parts else "exact"


def _tol(x: float) -> float:
    return EPS * max(1.0, abs(x))


def inside(iv: stats.Interval, lo: float, hi: float) -> str:
    """HOLDS when ``iv`` lies inside ``[lo, hi]``, FAILS when it lies outside, else INCONCLUSIVE."""
    if iv.lower >= lo - _tol(lo) and iv.upper <= hi + _tol(hi):
        return HOLDS
    if iv.upper < lo - _tol(lo) or iv.lower > hi + _tol(hi):
        return FAILS
    return INCONCLUSIVE


def meets(iv: stats.Interval, lo: float, hi: float) -> str:
    """HOLDS when ``iv`` and ``[lo, hi]`` overlap, else FAILS (a single run inside the range)."""
    return FAILS if iv.upper < lo - _tol(lo) or iv.lower > hi + _tol(hi) else HOLDS


def side(iv: stats.Interval, bound: float, test: str) -> str:
    """An inequality against ``bound`` for the whole interval: ``at_least`` (>=), ``below`` (<),
    ``above`` (>), ``less`` (< 0 for differences), ``greater`` (> 0)."""
    t = _tol(bound)
    if test == "at_least":
        return HOLDS if iv.lower >= bound - t else FAILS if iv.upper < bound - t else INCONCLUSIVE
    if test in ("below", "less"):
        return HOLDS if iv.upper < bound - t else FAILS if iv.lower >= bound - t else INCONCLUSIVE
    if test in ("above", "greater"):
        return HOLDS if iv.lower > bound + t else FAILS if iv.upper <= bound + t else INCONCLUSIVE
    raise ValueError(f"unknown inequality {test!r}")


# ----------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Answer:
    """One question's outcome for a variant: status, one-line reason, and the interval it used."""

    question: str
    status: str
    detail: str
    interval: stats.Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Verdict:
    """A variant's verdict: ``status`` answers ``question``; ``answers`` holds both questions."""

    status: str
    detail: str
    question: str = TYPICAL
    answers: dict[str, Answer] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.status,
            "question": self.question,
            "detail": self.detail,
            "answers": {q: a.to_dict() for q, a in self.answers.items()},
        }


def _unmeasured(question: str, why: str = "no measurement in this run") -> Verdict:
    return Verdict(NOT_MEASURED, why, question)


def _answer(question: str, test: str, claimed: Any, iv: stats.Interval | None, b: Band | None) -> Answer:
    """Apply ``test`` to the interval (``typical``) or prediction range (``single_run``) ``iv``."""
    what = "interval" if question == TYPICAL else "prediction range"
    if iv is None:
        return Answer(question, INCONCLUSIVE, f"no {what}: needs 2 seeds or more")
    span = f"95% {what} {_span(iv, b.log if b else False)}"
    if test in ("at_least", "below", "above", "less", "greater"):
        bound = 0.0 if test in ("less", "greater") else float(claimed)
        return Answer(question, side(iv, bound, test), span, iv)
    assert b is not None
    if question == SINGLE_RUN and test in ("approx", "ratio"):
        return Answer(question, meets(iv, b.lower, b.upper), span, iv)
    return Answer(question, inside(iv, b.lower, b.upper), span, iv)


def _verdict(question: str, answers: dict[str, Answer], head: str, measured: dict[str, Any]) -> Verdict:
    a = answers[question]
    return Verdict(a.status, f"{head}; {a.detail}", question, answers, measured)


def _intervals(s: Stat, log: bool) -> dict[str, Any]:
    iv, pr = s.interval(log), s.prediction(log)
    out = {**s.to_dict(), "scale": "log" if log else "linear"}
    out["interval"] = _iv_dict(iv, log)
    out["prediction"] = _iv_dict(pr, log)
    return out


def _iv_dict(iv: stats.Interval | None, log: bool) -> dict[str, Any] | None:
    if iv is None:
        return None
    lo, hi = (math.exp(iv.lower), math.exp(iv.upper)) if log else (iv.lower, iv.upper)
    return {"lower": lo, "upper": hi, "level": iv.level, "method": iv.method}


def judge_single(
    test: str, claimed: Any, s: Stat | None, slack: dict[str, float], question: str = TYPICAL
) -> Verdict:
    """Verdict of one single-measurement variant under both questions; ``status`` answers ``question``."""
    if test not in ("approx", "range", "at_least", "below", "above"):
        raise ValueError(
            f"unknown single-measurement test {test!r}; expected approx, range, at_least, below or above"
        )
    if s is None:
        return _unmeasured(question)
    b = band(claimed, slack) if test in ("approx", "range") else None
    log = bool(b and b.log)
    answers = {
        TYPICAL: _answer(TYPICAL, test, claimed, s.interval(log), b),
        SINGLE_RUN: _answer(SINGLE_RUN, test, claimed, s.prediction(log), b),
    }
    sym = {"approx": "≈", "range": "in", "at_least": "≥", "below": "<", "above": ">"}[test]
    head = f"mean {_fmt(s.mean)} (n={s.n}) vs {sym} {_fmt(claimed)}"
    if b is not None:
        head += f" ({describe_slack(slack)})"
    return _verdict(question, answers, head, {"stat": _intervals(s, log)})


def judge_paired(
    test: str,
    claimed: Any,
    a: Stat | None,
    b: Stat | None,
    slack: dict[str, float],
    question: str = TYPICAL,
) -> Verdict:
    """Verdict of a paired variant: seeds measured on both sides, their differences (log ratios under
    a factor slack) or, for ``ratio``, their ratios."""
    if test not in ("less", "greater", "equal", "ratio"):
        raise ValueError(f"unknown paired test {test!r}; expected less, greater, equal or ratio")
    if a is None or b is None:
        return _unmeasured(question)
    bv = dict(zip(b.seeds, b.values, strict=True))
    pairs = [(s, x, bv[s]) for s, x in zip(a.seeds, a.values, strict=True) if s in bv]
    if not pairs:
        return _unmeasured(question, "no seed measured on both sides")
    measured: dict[str, Any] = {"a": _intervals(a, False), "b": _intervals(b, False)}
    if test == "ratio":
        r = stat({s: (x / y if y != 0 else math.inf) for s, x, y in pairs})
        v = judge_single("approx", claimed, r, slack, question)
        return Verdict(v.status, "ratio " + v.detail, question, v.answers, {**measured, **v.measured})
    log = "factor" in slack
    if log and any(x <= 0 or y <= 0 for _, x, y in pairs):
        return Verdict(INCONCLUSIVE, "a non-positive value on a log scale", question, {}, measured)
    diffs = {s: (math.log(x) - math.log(y) if log else x - y) for s, x, y in pairs}
    d = stat(diffs)
    assert d is not None
    width = band(1.0 if log else abs(_mean(y for _, _, y in pairs)), slack).width if test == "equal" else 0.0
    bd = Band(False, -width, width, width)
    answers = {
        TYPICAL: _answer(TYPICAL, test, 0.0, d.interval(), bd),
        SINGLE_RUN: _answer(SINGLE_RUN, test, 0.0, d.prediction(), bd),
    }
    sym = {"less": "a < b", "greater": "a > b", "equal": f"a = b ({describe_slack(slack)})"}[test]
    what = "log(a/b)" if log else "a - b"
    head = f"{sym}: {what} mean {_fmt(d.mean)} over {d.n} seeds"
    measured["difference"] = {**_intervals(d, False), "of": what}
    return _verdict(question, answers, head, measured)


def _mean(xs) -> float:
    xs = list(xs)
    return math.fsum(xs) / len(xs)


# ----------------------------------------------------------------------------- combining


@dataclass(frozen=True)
class Combined:
    """A claim's verdict over its variants (see the module doc)."""

    status: str
    text: str
    holds_under: tuple[str, ...] = ()
    fails_under: tuple[str, ...] = ()
    inconclusive_under: tuple[str, ...] = ()
    trivial: bool = False
    control: str | None = None


def combine(variants: Sequence[tuple[str, bool, Verdict]], control: Verdict | None = None) -> Combined:
    """``(label, own, verdict)`` per variant -> the claim's verdict. The ``own`` variants (the note's
    reading) decide; the others only annotate; ``control`` (the untrained model under the same test)
    tags a holding training claim as trivial when it holds too."""
    own = [v.status for _, o, v in variants if o and v.status != NOT_MEASURED]
    if not own:
        status = NOT_MEASURED
    elif all(s == HOLDS for s in own):
        status = HOLDS
    elif any(s == FAILS for s in own):
        status = FAILS
    else:
        status = INCONCLUSIVE
    others = [(lab, v.status) for lab, o, v in variants if not o]
    holds = tuple(lab for lab, s in others if s == HOLDS)
    fails = tuple(lab for lab, s in others if s == FAILS)
    unsure = tuple(lab for lab, s in others if s == INCONCLUSIVE)
    ctl = None if control is None or control.status == NOT_MEASURED else control.status
    trivial = status == HOLDS and ctl == HOLDS
    parts = [TRIVIAL if trivial else status]
    if status != HOLDS and holds:
        parts.append(f"{HOLDS_ONLY}: " + "; ".join(holds))
    if status != FAILS and fails:
        parts.append(f"{FAILS_ONLY}: " + "; ".join(fails))
    return Combined(status, " · ".join(parts), holds, fails, unsure, trivial, ctl)


# ----------------------------------------------------------------------------- the notes' own numbers

CONSISTENT = "consistent"
INCONSISTENT = "inconsistent"


def check_consistency(entry: dict[str, Any]) -> dict[str, Any]:
    """An internal check of a note's own numbers (rules ``mean_of``, ``at_cap``, ``below``, ``equal``,
    ``less``, ``within``); returns ``{"status": consistent|inconsistent, "detail": ...}``."""
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
    elif rule == "within":
        lo, hi = entry["range"]
        bad = [v for v in entry["values"] if not lo <= v <= hi]
        ok = not bad
        detail = f"{len(bad)}/{len(entry['values'])} values outside [{_fmt(lo)}, {_fmt(hi)}]: {bad}"
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
        raise ValueError(
            f"unknown consistency rule {rule!r}; expected mean_of, at_cap, below, within, equal or less"
        )
    return {"status": CONSISTENT if ok else INCONSISTENT, "detail": detail}


def _value(v: Any) -> float:
    if isinstance(v, dict) and "divide" in v:
        x, y = v["divide"]
        return x / y
    return float(v)


def _span(iv: stats.Interval, log: bool) -> str:
    lo, hi = (math.exp(iv.lower), math.exp(iv.upper)) if log else (iv.lower, iv.upper)
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        if x == 0 or (1e-3 <= abs(x) < 1e5):
            return f"{x:.4g}"
        return f"{x:.3g}"
    if isinstance(x, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in x) + "]"
    return str(x)
