"""Small exact statistics used by gates and verdicts (no scipy needed at run time).

Binomial tails are computed in log space from ``math.lgamma``; exact for any ``n`` up to float rounding.
"""

from __future__ import annotations

import math


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
