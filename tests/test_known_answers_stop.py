"""The stop rule's replay against hand-worked traces (issue 16): the l2 trace and the finite mask are the
ones passed (not the metric's), the returned dtypes, and the stop index of each token."""

from __future__ import annotations

import math

import torch

from newllm.stop import STALL_IMPROVEMENT, Status, StopRule, replay

NAN = math.nan


def test_replay_judges_growth_on_the_l2_trace_it_is_given():
    # the rule's metric never grows, but the l2 trace jumps by 100x at k = 3: GROWTH at 3 (factor 10)
    res = torch.tensor([[1.0], [0.9], [0.8], [0.7]], dtype=torch.float64)
    l2 = torch.tensor([[1.0], [0.9], [90.0], [0.7]], dtype=torch.float64)
    rule = StopRule(metric="mse", threshold=1e-9, divergence_factor=10.0)
    status, iters, index = replay(res, rule, residual_l2=l2)
    assert status.tolist() == [Status.GROWTH] and iters.tolist() == [3] and index.tolist() == [2]
    # without the l2 trace the metric's own trace is used: no growth within the budget
    status, iters, index = replay(res, rule)
    assert status.tolist() == [Status.MAX_ITERATIONS] and iters.tolist() == [4] and index.tolist() == [3]


def test_replay_takes_the_finite_mask_it_is_given():
    # f was non-finite at k = 2 for token 1 although its recorded residual is finite
    res = torch.tensor([[1.0, 1.0], [0.5, 0.5], [1e-3, 1e-3]], dtype=torch.float64)
    finite = torch.tensor([[True, True], [True, False], [True, True]])
    status, iters, index = replay(res, StopRule(metric="l2", threshold=0.01), finite=finite)
    assert status.tolist() == [Status.CONVERGED, Status.NONFINITE]
    assert iters.tolist() == [3, 2] and index.tolist() == [2, 1]
    # default: finite where the residual is
    res[1, 0] = NAN
    status, iters, _ = replay(res, StopRule(metric="l2", threshold=0.01))
    assert status.tolist() == [Status.NONFINITE, Status.CONVERGED] and iters.tolist() == [2, 3]


def test_replay_returns_int8_status_and_long_counts():
    status, iters, index = replay(torch.ones(3, 2, dtype=torch.float64), StopRule(threshold=0.5))
    assert status.dtype == torch.int8 and iters.dtype == torch.long and index.dtype == torch.long
    assert status.tolist() == [Status.MAX_ITERATIONS] * 2 and iters.tolist() == [3, 3] and index.tolist() == [2, 2]


def test_replay_judges_the_first_iteration_too():
    # token 0 is below the threshold at k = 1, token 1 at k = 2 and token 2 never
    res = torch.tensor([[1e-4, 1.0, 1.0], [1.0, 1e-4, 1.0]], dtype=torch.float64)
    status, iters, index = replay(res, StopRule(metric="l2", threshold=1e-3))
    assert status.tolist() == [Status.CONVERGED, Status.CONVERGED, Status.MAX_ITERATIONS]
    assert iters.tolist() == [1, 2, 2] and index.tolist() == [0, 1, 1]


def test_the_stall_clock_needs_a_strict_one_percent_improvement():
    # 1.0, then exactly 1% lower (the same float expression as the rule's), then flat: the 1% step is not
    # an improvement (strictly below is), so the clock runs from k = 1 and a window of 2 stalls at k = 3
    r = 1.0 * (1.0 - STALL_IMPROVEMENT)
    res = torch.tensor([[1.0], [r], [r], [r], [r]], dtype=torch.float64)
    status, iters, _ = replay(res, StopRule(metric="l2", threshold=1e-9, stall_window=2))
    assert status.tolist() == [Status.STALLED] and iters.tolist() == [3]
    # a hair more than 1% is an improvement: the clock restarts at k = 2, stall at k = 4
    res[1:] = r * (1 - 1e-12)
    status, iters, _ = replay(res, StopRule(metric="l2", threshold=1e-9, stall_window=2))
    assert status.tolist() == [Status.STALLED] and iters.tolist() == [4]
