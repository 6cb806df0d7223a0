"""newllm.stats on known answers: scipy's values, exact binomial coverage, and simulated coverage of the
intervals and prediction ranges the reproduction's verdicts use (seeded, pure Python, a few seconds)."""

import math
import random

import pytest

from newllm import stats

scipy_stats = pytest.importorskip("scipy.stats")

P_GRID = [i / 20 for i in range(1, 20)]


@pytest.mark.parametrize(
    "n, p", [(1, 0.5), (10, 0.3), (57, 0.9), (512, 0.758), (0, 0.2), (20, 0.0), (20, 1.0)]
)
def test_binomial_tails_match_scipy(n, p):
    for k in range(-1, n + 2):
        assert stats.binomial_cdf(k, n, p) == pytest.approx(float(scipy_stats.binom.cdf(k, n, p)), abs=1e-12)
        assert stats.binomial_sf(k, n, p) == pytest.approx(
            float(scipy_stats.binom.sf(k - 1, n, p)), abs=1e-12
        )
    assert math.fsum(stats.binomial_pmf(k, n, p) for k in range(n + 1)) == pytest.approx(1.0)


def test_binomial_rejects_bad_arguments():
    with pytest.raises(ValueError, match="p must be"):
        stats.binomial_cdf(1, 3, 1.5)
    with pytest.raises(ValueError, match="n must be"):
        stats.binomial_cdf(1, -3, 0.5)


@pytest.mark.parametrize("a, b", [(0.5, 0.5), (2.0, 3.0), (10.0, 1.0), (0.03, 1.5), (300.0, 200.0)])
def test_beta_and_beta_binomial_match_scipy(a, b):
    for x in (1e-4, 0.1, 0.5, 0.9, 0.9999):
        assert stats.beta_cdf(x, a, b) == pytest.approx(float(scipy_stats.beta.cdf(x, a, b)), abs=1e-11)
    for q in (0.025, 0.5, 0.975):
        assert stats.beta_quantile(q, a, b) == pytest.approx(float(scipy_stats.beta.ppf(q, a, b)), abs=1e-9)
    for k in range(11):
        assert stats.beta_binomial_pmf(k, 10, a, b) == pytest.approx(
            float(scipy_stats.betabinom.pmf(k, 10, a, b)), rel=1e-9, abs=1e-300
        )


@pytest.mark.parametrize("df", [1, 2, 4, 19, 100])
def test_t_distribution_matches_scipy(df):
    for q in (0.6, 0.975, 0.995):
        assert stats.t_quantile(q, df) == pytest.approx(float(scipy_stats.t.ppf(q, df)), abs=1e-8)
        assert stats.t_quantile(1 - q, df) == pytest.approx(float(scipy_stats.t.ppf(1 - q, df)), abs=1e-8)
    for x in (-3.0, 0.0, 0.5, 2.0):
        assert stats.t_cdf(x, df) == pytest.approx(float(scipy_stats.t.cdf(x, df)), abs=1e-11)


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (388, 512), (1, 1)])
def test_binomial_intervals_match_scipy(k, n):
    ci = scipy_stats.binomtest(k, n).proportion_ci
    for ours, method in (
        (stats.wilson_interval(k, n), "wilson"),
        (stats.clopper_pearson_interval(k, n), "exact"),
    ):
        lo, hi = ci(confidence_level=0.95, method=method)
        assert (ours.lower, ours.upper) == pytest.approx((lo, hi), abs=1e-9)


def exact_coverage(interval, n: int) -> list[float]:
    """For each p of the grid: P(the interval of a Binomial(n, p) count covers p), summed exactly."""
    ivs = [interval(k, n) for k in range(n + 1)]
    return [
        math.fsum(stats.binomial_pmf(k, n, p) for k in range(n + 1) if ivs[k].contains(p)) for p in P_GRID
    ]


@pytest.mark.parametrize("n", [10, 20, 50])
def test_wilson_covers_a_known_rate_at_the_stated_level(n):
    cov = exact_coverage(stats.wilson_interval, n)
    assert 0.94 <= sum(cov) / len(cov) <= 0.97, cov  # Wald: 0.80 at n = 10, 0.88 at 20, 0.93 at 50
    assert min(cov) >= 0.90, cov  # Wald: 0.40 at n = 10


@pytest.mark.parametrize("n", [10, 25])
def test_clopper_pearson_never_covers_less_than_the_level(n):
    cov = exact_coverage(stats.clopper_pearson_interval, n)
    assert min(cov) >= 0.95, cov


def seeds_of_counts(rng: random.Random, seeds: int, tokens: int, mu: float, rho: float) -> list[int]:
    """Per-seed converged counts: a seed's rate ~ Beta(mean mu, intra-class correlation rho), then
    Binomial(tokens, rate) (rho = 0: one shared rate)."""
    out = []
    for _ in range(seeds):
        p = mu if rho == 0 else rng.betavariate(mu * (1 / rho - 1), (1 - mu) * (1 / rho - 1))
        out.append(sum(rng.random() < p for _ in range(tokens)))
    return out


@pytest.mark.parametrize(
    "seeds, tokens, mu, rho", [(20, 10, 0.6, 0.0), (20, 10, 0.6, 0.2), (20, 1, 0.3, 0.0)]
)
def test_rate_interval_covers_the_typical_rate_over_seeds(seeds, tokens, mu, rho):
    rng = random.Random(1)
    reps = 500
    hits = 0
    for _ in range(reps):
        counts = seeds_of_counts(rng, seeds, tokens, mu, rho)
        hits += stats.rate_interval(counts, [tokens] * seeds).contains(mu)
    # rho = 0.2 at 10 tokens: the pooled Wilson interval (ignoring the seeds) covers about 0.84
    assert hits / reps >= 0.92, hits / reps


@pytest.mark.parametrize("seeds, tokens, mu, rho", [(20, 10, 0.6, 0.0), (20, 10, 0.6, 0.2), (5, 10, 0.8, 0.2),
                                                     (20, 100, 0.7, 0.05), (20, 1, 0.3, 0.0)])  # fmt: skip
def test_rate_prediction_range_holds_a_new_seed(seeds, tokens, mu, rho):
    rng = random.Random(2)
    reps = 500
    hits, width = 0, 0.0
    for _ in range(reps):
        counts = seeds_of_counts(rng, seeds, tokens, mu, rho)
        new = seeds_of_counts(rng, 1, tokens, mu, rho)[0]
        pr = stats.rate_prediction_range(counts, [tokens] * seeds, tokens)
        hits += pr.contains(new / tokens)
        width += (pr.upper - pr.lower) / reps
    assert hits / reps >= 0.93, hits / reps  # a binomial-only range covers about 0.85 at rho = 0.2
    if tokens == 100:
        assert hits / reps <= 0.995 and width < 0.5, (hits / reps, width)  # not "anything goes"


def normal_draws(rng: random.Random, n: int) -> list[float]:
    return [rng.gauss(3.0, 2.0) for _ in range(n)]


def test_t_interval_covers_the_mean_at_the_stated_level():
    rng = random.Random(3)
    reps = 4000
    hits = sum(stats.mean_interval(normal_draws(rng, 5)).contains(3.0) for _ in range(reps))
    assert abs(hits / reps - 0.95) <= 0.012, hits / reps  # z instead of t at n = 5: 0.88


def test_prediction_range_holds_a_held_out_draw_at_the_stated_level():
    rng = random.Random(4)
    reps = 4000
    hits = 0
    for _ in range(reps):
        pr = stats.prediction_range(normal_draws(rng, 5))
        hits += pr.contains(normal_draws(rng, 1)[0])
    assert abs(hits / reps - 0.95) <= 0.012, hits / reps  # without sqrt(1 + 1/n): 0.92; with z: 0.89


def test_design_effect_is_one_for_binomial_spread_and_grows_with_seed_differences():
    assert stats.design_effect([5] * 10, [10] * 10) == 1.0
    assert stats.design_effect([0] * 5 + [10] * 5, [10] * 10) == pytest.approx(
        10 * 10 / 9 * 1.0 / 1.0, rel=1e-9
    )
    assert stats.design_effect([3], [10]) == 1.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: stats.wilson_interval(3, 2), "0 <= k <= n"),
        (lambda: stats.mean_interval([1.0]), "at least 2"),
        (lambda: stats.prediction_range([1.0], level=1.0), "level"),
        (lambda: stats.rate_interval([1, 2], [10]), "one count per seed"),
        (lambda: stats.rate_prediction_range([11], [10], 10), "0 <= converged <= tokens"),
        (lambda: stats.rate_prediction_range([1], [10], 0), "new_tokens"),
        (lambda: stats.beta_cdf(0.5, 0.0, 1.0), "beta parameters"),
    ],
)
def test_bad_arguments_name_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()
