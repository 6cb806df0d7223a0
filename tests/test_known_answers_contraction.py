"""Rate fits against sequences whose factor we choose (issue 16): ``fit_log_line`` on exact geometric and
log-linear columns (tail selection, NaN gaps, floor, minimum points), ``observed_factor`` on traces built
from a chosen factor (``mse`` fits square-rooted, rounding floor, predicted crossing) and
``predict_iterations`` against the count worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from newllm import contraction as C
from newllm.result import FixedPointResult
from newllm.stop import Status

NAN = math.nan


def test_fit_log_line_recovers_intercept_and_slope_of_a_geometric_column():
    k = torch.arange(1, 11, dtype=torch.float64)
    trace = torch.stack([3.0 * 0.5**k, 0.2 * 0.9**k, 1.5 * 1.1**k], dim=1)  # [10, 3]
    a, b, n = C.fit_log_line(trace)
    torch.testing.assert_close(b, torch.tensor([math.log(0.5), math.log(0.9), math.log(1.1)], dtype=torch.float64))
    torch.testing.assert_close(a, torch.tensor([math.log(3.0), math.log(0.2), math.log(1.5)], dtype=torch.float64))
    assert n.tolist() == [5, 5, 5]  # last half of 10 points


def test_fit_log_line_uses_only_the_tail_of_the_finite_entries():
    # 8 finite entries then NaN (the token stopped): slope -1 on rows 1..4, slope -2 on rows 5..8;
    # tail 0.5 -> the last 4 finite entries (rows 5..8) -> slope -2 exactly
    logs = [0.0, -1.0, -2.0, -3.0, -5.0, -7.0, -9.0, -11.0]
    col = torch.tensor([math.exp(v) for v in logs] + [NAN, NAN], dtype=torch.float64).unsqueeze(1)
    _, b, n = C.fit_log_line(col, tail=0.5, min_points=2)
    assert n.tolist() == [4] and b.item() == pytest.approx(-2.0, rel=1e-12)
    # tail 1.0: all 8 points; the least-squares slope of logs over k = 1..8
    kk = torch.arange(1, 9, dtype=torch.float64)
    y = torch.tensor(logs, dtype=torch.float64)
    want = float(((kk - kk.mean()) * (y - y.mean())).sum() / (kk - kk.mean()).pow(2).sum())
    _, b, n = C.fit_log_line(col, tail=1.0, min_points=2)
    assert n.tolist() == [8] and b.item() == pytest.approx(want, rel=1e-12)
    # min_points wins over a small tail: tail 0.25 of 8 is 2, min_points 6 -> rows 3..8
    _, b, n = C.fit_log_line(col, tail=0.25, min_points=6)
    y6, k6 = y[2:], kk[2:]
    want6 = float(((k6 - k6.mean()) * (y6 - y6.mean())).sum() / (k6 - k6.mean()).pow(2).sum())
    assert n.tolist() == [6] and b.item() == pytest.approx(want6, rel=1e-12)


def test_fit_log_line_floor_and_too_few_points():
    col = torch.tensor([[1.0, 1.0], [0.5, NAN], [0.25, NAN], [1e-20, NAN]], dtype=torch.float64)
    a, b, n = C.fit_log_line(col, tail=1.0, min_points=1, floor=1e-10)  # the 1e-20 entry is at the floor
    assert n.tolist() == [3, 1]
    assert b[0].item() == pytest.approx(math.log(0.5), rel=1e-12) and a[0].item() == pytest.approx(math.log(2.0), rel=1e-12)
    assert math.isnan(b[1].item())  # one point: no line
    with pytest.raises(ValueError, match=r"trace must be \[K, N\], got shape \(4,\)"):
        C.fit_log_line(col[:, 0])
    for tail in (0.0, 1.5):
        with pytest.raises(ValueError, match=f"tail must be in \\(0, 1\\], got {tail}"):
            C.fit_log_line(col, tail=tail)
    assert C.fit_log_line(col, tail=1.0)[2].tolist() == [4, 1]  # the default floor is 0


def _result(l2: torch.Tensor, dim: int, metric: str, threshold: float, norm: float = 1.0) -> FixedPointResult:
    """A result whose l2 trace is ``l2 [K, N]`` for contexts of dimension ``dim`` and norm ``norm``."""
    trace = {"l2": l2, "mse": l2**2 / dim, "rms": l2 / math.sqrt(dim), "rel": l2 / norm}
    k, n = l2.shape
    return FixedPointResult(
        context=torch.zeros(n, dim, dtype=torch.float64), status=torch.full((n,), int(Status.MAX_ITERATIONS)),
        iterations=torch.full((n,), k), evaluations=torch.full((n,), k), residual={m: v[-1] for m, v in trace.items()},
        lowest_residual=trace[metric].min(0).values, metric=metric, threshold=threshold, max_iterations=k,
        trace=trace,
    )


@pytest.mark.parametrize("fit_metric", ["l2", "mse", "rms", "rel"])
def test_observed_factor_returns_the_chosen_factor_in_l2_units(fit_metric):
    k = torch.arange(1, 21, dtype=torch.float64).unsqueeze(1)
    l2 = 2.0 * torch.tensor([0.7, 0.3], dtype=torch.float64) ** k  # [20, 2]
    res = _result(l2, dim=4, metric="mse", threshold=1e-6)
    est = C.observed_factor(res, metric=fit_metric)
    torch.testing.assert_close(est.values, torch.tensor([0.7, 0.3], dtype=torch.float64), rtol=1e-10, atol=0)
    assert est.details["fit_metric"] == fit_metric and est.details["points"].tolist() == [10, 10]
    # mse_k = 4 q^(2k) / 4 = q^(2k): below 1e-6 first at k = ceil(log(1e-6) / (2 log q))
    pred = [math.ceil(math.log(1e-6) / (2 * math.log(q))) for q in (0.7, 0.3)]
    assert est.details["predicted_iterations"].tolist() == pred


def test_observed_factor_leaves_out_the_rounding_floor_and_predicts_inf_for_growth():
    k = torch.arange(1, 13, dtype=torch.float64).unsqueeze(1)
    l2 = torch.cat([0.5**k, 1.2**k], dim=1)
    l2[8:, 0] = 1e-17  # rel below 100 eps from iteration 9: those rows are not fitted
    res = _result(l2, dim=1, metric="l2", threshold=1e-3)
    est = C.observed_factor(res, tail=1.0, min_points=2)
    assert est.details["points"].tolist() == [8, 12]
    torch.testing.assert_close(est.values, torch.tensor([0.5, 1.2], dtype=torch.float64), rtol=1e-10, atol=0)
    pred = est.details["predicted_iterations"]
    assert pred[0].item() == math.ceil(math.log(1e-3) / math.log(0.5)) and pred[1].item() == math.inf
    with pytest.raises(ValueError, match=r"unknown metric 'cos'; expected one of mse, l2, rms, rel"):
        C.observed_factor(res, metric="cos")


def test_predict_iterations_matches_the_count_by_hand():
    # r_1 = 1, factor 0.5, power 1: r_k = 0.5^(k-1) < 0.01 first at k = 8; power 2 (mse): 0.25^(k-1) -> k = 5
    f, first = torch.tensor([0.5]), torch.tensor([1.0])
    assert C.predict_iterations(f, first, 0.01).tolist() == [8.0]
    assert C.predict_iterations(f, first, 0.01, power=2).tolist() == [5.0]
    # already below at iteration 1: 1, whatever the factor
    assert C.predict_iterations(torch.tensor([0.9, 2.0]), torch.tensor([0.001, 0.001]), 0.01).tolist() == [1.0, 1.0]
    # a factor of exactly 1 never gets there
    assert C.predict_iterations(torch.tensor([1.0]), torch.tensor([1.0]), 0.01).tolist() == [math.inf]


def test_predict_iterations_is_strict_at_exact_powers():
    # 1, 0.5, 0.25, 0.125, 0.0625: 0.125 is not below 0.125, so k = 5 (not 1 + ceil(3) = 4); likewise a
    # first residual equal to the threshold needs one more iteration
    assert C.predict_iterations(torch.tensor([0.5]), torch.tensor([1.0]), 0.125).tolist() == [5.0]
    assert C.predict_iterations(0.5, 0.01, 0.01).item() == 2.0


def test_predict_iterations_computes_in_float64():
    # Python floats are taken as float64: 1 - 1e-9 is not 1 (float32 would round it and answer inf), and
    # a first residual 1e-9 above the threshold is not at it
    assert C.predict_iterations(1 - 1e-9, 1.0, 0.5).item() == 2 + math.floor(math.log(0.5) / math.log(1 - 1e-9))
    assert C.predict_iterations(0.5, 1 + 1e-9, 1.0).item() == 2.0


def test_fit_log_line_fits_a_float32_trace_in_float64_and_drops_zeros():
    k = torch.arange(1, 11, dtype=torch.float64)
    trace = (0.5**k).to(torch.float32).unsqueeze(1)  # exact in float32; the fit must not be float32-rounded
    _, b, _ = C.fit_log_line(trace, tail=1.0)
    assert b.item() == pytest.approx(math.log(0.5), rel=1e-13)
    # an exact zero (a residual at the floor 0) is left out, not fitted as log(1e-300)
    trace = (0.5**k).unsqueeze(1)
    trace[-1] = 0.0
    _, b, n = C.fit_log_line(trace, tail=1.0)
    assert n.tolist() == [9] and b.item() == pytest.approx(math.log(0.5), rel=1e-12)
