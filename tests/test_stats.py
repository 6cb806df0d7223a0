import math

import pytest

from newllm import stats

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("n, p", [(1, 0.5), (10, 0.3), (57, 0.9), (512, 0.758), (0, 0.2), (20, 0.0), (20, 1.0)])
def test_binomial_tails_match_scipy(n, p):
    for k in range(-1, n + 2):
        assert stats.binomial_cdf(k, n, p) == pytest.approx(float(scipy_stats.binom.cdf(k, n, p)), abs=1e-12)
        assert stats.binomial_sf(k, n, p) == pytest.approx(float(scipy_stats.binom.sf(k - 1, n, p)), abs=1e-12)
    assert math.fsum(stats.binomial_pmf(k, n, p) for k in range(n + 1)) == pytest.approx(1.0)


def test_binomial_rejects_bad_arguments():
    with pytest.raises(ValueError, match="p must be"):
        stats.binomial_cdf(1, 3, 1.5)
    with pytest.raises(ValueError, match="n must be"):
        stats.binomial_cdf(1, -3, 0.5)
