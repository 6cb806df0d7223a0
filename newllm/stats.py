"""Small exact statistics used by gates and verdicts (no scipy needed at run time).

* Binomial tails in log space from ``math.lgamma``; exact for any ``n`` up to float rounding.
* Distributions: the regularized incomplete beta (Lentz's continued fraction), Student's t, beta and
  beta-binomial; quantiles by bisection (monotone, 1e-12 on the probability scale).
* Intervals for a pooled rate (Wilson, Clopper-Pearson; :func:`rate_interval` for counts from
  several model seeds, Wilson on the effective sample size), the t interval of a mean, and 95%
  *prediction* ranges for one new seed (:func:`prediction_range`, :func:`rate_prediction_range`).

Every interval is an :class:`Interval` ``(lower, upper, level, method)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

#: Default confidence / prediction level.
LEVEL = 0.95


def _check_binomial(k: int, n: int, p: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"k must be an integer, got {k!r}")
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"p must be in [0, 1], got {p!r}")


def binomial_pmf(k: int, n: int, p: float) -> float:
    """``P(X = k)`` for ``X ~ Binomial(n, p)``."""
    _check_binomial(k, n, p)
    if k < 0 or k > n:
        return 0.0
    if p in (0.0, 1.0):
        return float(k == (0 if p == 0.0 else n))
    log = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return math.exp(log + k * math.log(p) + (n - k) * math.log1p(-p))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)`` (1 for ``k >= n``, 0 for ``k < 0``)."""
    _check_binomial(k, n, p)
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, math.fsum(binomial_pmf(i, n, p) for i in range(k + 1)))


def binomial_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``."""
    return 1.0 - binomial_cdf(k - 1, n, p) if k > 0 else 1.0


# ----------------------------------------------------------------------------- distributions


def _check_level(level: float) -> None:
    if not (0.0 < level < 1.0):
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def _beta_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of ``I_x(a, b)`` (modified Lentz), for ``x < (a + 1) / (a + b + 2)``."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    return h  # pragma: no cover - converges in far fewer steps for the parameters used here


def beta_cdf(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta ``I_x(a, b) = P(X <= x)`` for ``X ~ Beta(a, b)``, ``a, b > 0``."""
    if not (a > 0 and b > 0):
        raise ValueError(f"beta parameters must be > 0, got a={a!r}, b={b!r}")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1.0 - x, b, a) / b


def _bisect(f, q: float, lo: float, hi: float) -> float:
    """The ``x`` in ``[lo, hi]`` where the increasing ``f`` crosses ``q`` (200 halvings)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def beta_quantile(q: float, a: float, b: float) -> float:
    """``x`` with ``I_x(a, b) = q``."""
    if not (0.0 <= q <= 1.0):
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    if q in (0.0, 1.0):
        return q
    return _bisect(lambda x: beta_cdf(x, a, b), q, 0.0, 1.0)


def t_cdf(x: float, df: float) -> float:
    """``P(T <= x)`` for Student's t with ``df > 0`` degrees of freedom."""
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df!r}")
    tail = 0.5 * beta_cdf(df / (df + x * x), 0.5 * df, 0.5)
    return 1.0 - tail if x > 0 else tail


@functools.lru_cache(maxsize=256)
def t_quantile(q: float, df: float) -> float:
    """``x`` with ``t_cdf(x, df) = q``, ``0 < q < 1`` (cached: intervals ask for few distinct ones)."""
    if not (0.0 < q < 1.0):
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    hi = 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    return _bisect(lambda x: t_cdf(x, df), q, 0.0, hi)


def beta_binomial_pmf(k: int, n: int, a: float, b: float) -> float:
    """``P(K = k)`` for ``K ~ BetaBinomial(n, a, b)``: ``p ~ Beta(a, b)``, then ``K ~ Binomial(n, p)``."""
    if k < 0 or k > n:
        return 0.0
    log = (
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        + math.lgamma(k + a) + math.lgamma(n - k + b) - math.lgamma(n + a + b)
        + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    )  # fmt: skip
    return math.exp(log)


# ----------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Interval:
    """A two-sided interval at ``level`` and how it was computed."""

    lower: float
    upper: float
    level: float
    method: str

    def contains(self, x: float, slack: float = 0.0) -> bool:
        """``lower - slack <= x <= upper + slack``."""
        return self.lower - slack <= x <= self.upper + slack

    def to_dict(self) -> dict[str, float | str]:
        return {"lower": self.lower, "upper": self.upper, "level": self.level, "method": self.method}


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def wilson_interval(k: float, n: float, level: float = LEVEL, *, z: float | None = None) -> Interval:
    """Wilson score interval of a binomial rate ``k / n`` (``k``, ``n`` may be effective, non-integer);
    ``z`` replaces the normal quantile of ``level`` (a t quantile for clustered counts)."""
    _check_level(level)
    if not (n > 0 and 0 <= k <= n):
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k!r}, n={n!r}")
    z = _z(level) if z is None else z
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the ends (no float residue)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return Interval(lo, hi, level, "wilson")


def clopper_pearson_interval(k: int, n: int, level: float = LEVEL) -> Interval:
    """The exact (Clopper-Pearson) interval of a binomial rate: coverage at least ``level`` for every p."""
    _check_level(level)
    _check_binomial(k, n, 0.5)
    if n == 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k!r}, n={n!r}")
    a = 1.0 - level
    lo = 0.0 if k == 0 else beta_quantile(a / 2, k, n - k + 1)
    hi = 1.0 if k == n else beta_quantile(1 - a / 2, k + 1, n - k)
    return Interval(lo, hi, level, "clopper-pearson")


def _check_counts(counts: Sequence[int], tokens: Sequence[int]) -> None:
    if not counts or len(counts) != len(tokens):
        raise ValueError(
            f"need one count per seed and as many token counts, got {len(counts)} and {len(tokens)}"
        )
    for k, n in zip(counts, tokens, strict=True):
        if not (isinstance(n, int) and n > 0 and isinstance(k, int) and 0 <= k <= n):
            raise ValueError(
                f"each seed needs integers 0 <= converged <= tokens, tokens > 0; got {k!r}/{n!r}"
            )


def design_effect(counts: Sequence[int], tokens: Sequence[int]) -> float:
    """Variance of the per-seed rates over the binomial variance they would have with one shared rate
    (>= 1; 1 when the seeds agree as well as token draws can, or with fewer than 2 seeds)."""
    _check_counts(counts, tokens)
    s = len(counts)
    if s < 2:
        return 1.0
    p = sum(counts) / sum(tokens)
    if p in (0.0, 1.0):
        return 1.0
    rates = [k / n for k, n in zip(counts, tokens, strict=True)]
    mean = sum(rates) / s
    var = sum((r - mean) ** 2 for r in rates) / (s - 1)
    binomial = p * (1 - p) * sum(1.0 / n for n in tokens) / s
    return max(1.0, var / binomial)


def rate_interval(counts: Sequence[int], tokens: Sequence[int], level: float = LEVEL) -> Interval:
    """Interval of the typical rate over model seeds from per-seed ``counts`` of ``tokens``.

    The rate varies between seeds (weights) and within a seed (which tokens converge), so the seeds
    are clusters: Wilson's interval on the pooled rate with the effective sample size
    ``sum(tokens) / design_effect``, and the t quantile with ``seeds - 1`` degrees of freedom in place
    of the normal one when the design effect exceeds 1 (the spread is then estimated from the seeds).
    With one shared rate (design effect 1) this is the plain Wilson interval of the pooled count.
    """
    deff = design_effect(counts, tokens)
    k, n = sum(counts), sum(tokens)
    if deff == 1.0:
        return wilson_interval(k, n, level)
    z = t_quantile(0.5 + level / 2, len(counts) - 1)
    iv = wilson_interval(k / deff, n / deff, level, z=z)
    return Interval(iv.lower, iv.upper, level, "wilson, design effect, t")


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Student's t interval of the mean of ``values`` (at least 2)."""
    _check_level(level)
    n = len(values)
    if n < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {n}")
    mean, sd = _mean_sd(values)
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean - half, mean + half, level, "t")


def prediction_range(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Range that holds one new draw with probability ``level`` (normal model, unknown mean and sd):
    ``mean ± t(n-1) · sd · sqrt(1 + 1/n)`` from ``n >= 2`` values."""
    _check_level(level)
    n = len(values)
    if n < 2:
        raise ValueError(f"a prediction range needs at least 2 values, got {n}")
    mean, sd = _mean_sd(values)
    half = t_quantile(0.5 + level / 2, n - 1) * sd * math.sqrt(1 + 1 / n)
    return Interval(mean - half, mean + half, level, "t prediction")


def rate_prediction_range(
    counts: Sequence[int], tokens: Sequence[int], new_tokens: int, level: float = LEVEL
) -> Interval:
    """Range of the rate of one new seed on ``new_tokens`` tokens, from per-seed ``counts`` of ``tokens``.

    Model: a seed's rate ``p ~ Beta`` and its count ``~ Binomial(new_tokens, p)`` (beta-binomial).
    The beta's mean is the pooled rate shrunk as Jeffreys' ``(K + 1/2) / (N + 1)``; its variance is
    the between-seed variance of the latent rates (method of moments, 0 when token draws explain the
    spread) inflated by ``(t / z)^2`` for the finitely many seeds, plus the variance of the pooled
    mean itself (binomial, times the design effect). The range is the central ``level`` of that
    beta-binomial, in rates: its ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles.
    """
    _check_level(level)
    _check_counts(counts, tokens)
    if not (isinstance(new_tokens, int) and new_tokens > 0):
        raise ValueError(f"new_tokens must be a positive integer, got {new_tokens!r}")
    s, k_all, n_all = len(counts), sum(counts), sum(tokens)
    mu = (k_all + 0.5) / (n_all + 1.0)
    between = 0.0
    if s >= 2:
        rates = [k / n for k, n in zip(counts, tokens, strict=True)]
        mean = sum(rates) / s
        var = sum((r - mean) ** 2 for r in rates) / (s - 1)
        m_inv = sum(1.0 / n for n in tokens) / s
        if m_inv < 1.0:
            between = max(0.0, (var - mu * (1 - mu) * m_inv) / (1 - m_inv))
        between *= (t_quantile(0.5 + level / 2, s - 1) / _z(level)) ** 2
    total = min(between + mu * (1 - mu) * design_effect(counts, tokens) / n_all, 0.999 * mu * (1 - mu))
    ab = mu * (1 - mu) / total - 1.0
    pmf = [beta_binomial_pmf(k, new_tokens, mu * ab, (1 - mu) * ab) for k in range(new_tokens + 1)]
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    cum, lo, hi = 0.0, None, new_tokens
    for k, p in enumerate(pmf):
        cum += p
        if lo is None and cum >= lo_q:
            lo = k
        if cum >= hi_q - 1e-12:
            hi = k
            break
    return Interval((lo or 0) / new_tokens, hi / new_tokens, level, "beta-binomial prediction")
