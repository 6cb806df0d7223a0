"""Family 5: known answers for the solver (``newllm.iterate``), in float64.

Affine maps ``f(z) = A z + b`` with ``A`` normal: the residual of iteration k is
``r_k = f(z_k) - z_k = M^(k-1) r_1`` with ``M = (1 - beta) I + beta A`` (beta = damping; ``M`` is
normal and commutes with ``A - I``), so ``||r_k|| <= rho(M)^(k-1) ||r_1||``, with equality for
``A = rho Q`` (Q orthogonal) and beta = 1. Hence a token converges (l2 residual < tol, after the
warmup w) by iteration ``max(ceil(x) + 1, w + 1)`` with ``x = log(tol / r_1) / log rho(M)``, and for
``A = rho Q`` exactly at ``max(floor(x) + 2, w + 1)``; examples with ``x`` within 1e-7 of an integer
(the residual within float rounding of the threshold) are skipped.
"""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from newllm import SolverConfig, build_model, iterate, solve
from newllm.metrics import METRICS, convert_threshold
from newllm.stop import Status
from properties import strategies as S

COS_FIXED_POINT = 0.7390851332151607
#: Relative distance of x = log(tol/r1)/log(rho) from an integer below which the example is skipped.
BAND = 1e-7


def _first_residual(m: S.AffineMap) -> torch.Tensor:
    return torch.linalg.vector_norm(m(m.z0, None) - m.z0, dim=-1)


def _x(tol: float, r1: torch.Tensor, rho: float) -> torch.Tensor:
    return torch.log(tol / r1) / math.log(rho)


@given(
    m=S.affine_maps(rho=st.floats(0.05, 0.9)),
    tol_l2=S.log_uniform(1e-10, 1.0),
    metric=S.exact_metric_names,
    warmup=st.integers(0, 5),
    damping=st.one_of(st.just(1.0), st.floats(0.2, 1.0)),
)
def test_contractive_affine_maps_converge_by_the_bound(m, tol_l2, metric, warmup, damping):
    d = m.a.shape[0]
    lam = torch.linalg.eigvals(m.a)
    rho_m = float((1 - damping + damping * lam).abs().max())
    assume(rho_m < 0.999)  # a damped contraction slower than this needs thousands of iterations
    r1 = _first_residual(m)
    x = _x(tol_l2, r1, rho_m)
    assume(bool((x - x.round()).abs().min() > BAND))
    x = x.clamp_min(0)
    bound = torch.maximum(torch.ceil(x).long() + 1, torch.tensor(warmup + 1))
    cfg = SolverConfig(
        metric=metric,
        threshold=convert_threshold(tol_l2, "l2", metric, d),
        warmup=warmup,
        damping=damping,
        max_iterations=int(bound.max()) + 5,
        divergence_factor=None,
    )
    res = iterate(m, m.z0.clone(), cfg)
    assert res.status.tolist() == [Status.CONVERGED] * len(r1), res.status
    assert bool((res.iterations <= bound).all()), (res.iterations, bound, x)
    assert bool((res.iterations >= warmup + 1).all()), (res.iterations, warmup)
    if m.exact and damping == 1.0:  # every |lambda| = rho: the count is known exactly
        exact = torch.maximum(torch.floor(x).long() + 2, torch.tensor(warmup + 1))
        exact = torch.where(r1 < tol_l2, torch.tensor(warmup + 1), exact)
        assert res.iterations.tolist() == exact.tolist(), (res.iterations, exact, x)
    # ||f(z_k) - z*|| <= rho ||z_k - z*|| <= rho r_k / (1 - rho), r_k < tol
    err = torch.linalg.vector_norm(res.context - m.fixed_point, dim=-1)
    lim = m.rho * tol_l2 / (1 - m.rho) * (1 + 1e-6) + 1e-12 * (1 + m.fixed_point.abs().max())
    assert bool((err <= lim).all()), (err, lim)


@given(m=S.affine_maps(rho=st.floats(0.05, 0.9)), tol_l2=S.log_uniform(1e-8, 1e-1))
def test_anderson_lands_within_the_contraction_bound(m, tol_l2):
    r1 = _first_residual(m)
    x = _x(tol_l2, r1, m.rho).clamp_min(0)
    picard_bound = int(torch.ceil(x).max()) + 1
    cfg = SolverConfig(
        metric="l2",
        threshold=tol_l2,
        method="anderson",
        max_iterations=picard_bound + 10,
        divergence_factor=None,
    )
    res = iterate(m, m.z0.clone(), cfg)
    assert bool(res.converged.all()), (res.status, res.iterations, picard_bound)
    err = torch.linalg.vector_norm(res.context - m.fixed_point, dim=-1)
    lim = m.rho * tol_l2 / (1 - m.rho) * (1 + 1e-6) + 1e-12 * (1 + m.fixed_point.abs().max())
    assert bool((err <= lim).all()), (err, lim)


@given(
    z0=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), elements=st.floats(-1e3, 1e3)
    ),
    tol=S.log_uniform(1e-12, 0.4),
    warmup=st.integers(0, 3),
)
def test_cos_reaches_the_dottie_number(z0, tol, warmup):
    """cos maps any start into [cos 1, 1] by the 2nd image, where it contracts with k = sin 1; cos z - z
    is monotone with |cos z - z| >= 0.73 outside x* +- 0.5, so an l2 residual below tol < 0.4 puts the
    returned cos(z) within tol of x* = 0.739085... elementwise in l2."""
    z = torch.from_numpy(z0)
    n, d = z.shape
    k = math.sin(1.0)
    bound = 3 + math.ceil(math.log(tol / (math.sqrt(d) * (1 + k) * 0.261)) / math.log(k)) + 1
    cfg = SolverConfig(metric="l2", threshold=tol, warmup=warmup, max_iterations=max(bound, warmup + 1) + 5)
    res = iterate(lambda c, rows: torch.cos(c), z.clone(), cfg)
    assert bool(res.converged.all()), res.status
    assert bool((res.iterations <= max(bound, warmup + 1)).all()), (res.iterations, bound)
    err = torch.linalg.vector_norm(res.context - COS_FIXED_POINT, dim=-1)
    assert bool((err < tol).all()), (err, tol)


@given(
    m=S.affine_maps(rho=st.floats(1.0, 2.0), max_rows=4, exact=True),
    translation=st.booleans(),
    frac=S.log_uniform(1e-6, 0.5),
    metric=S.exact_metric_names,
    max_iterations=st.integers(1, 60),
)
def test_non_contractive_maps_never_report_convergence(m, translation, frac, metric, max_iterations):
    """``A = s Q`` with s >= 1 (rotations, reflections, expansions) or ``A = I`` (a translation): the
    residual ``||A^(k-1) r_1|| = s^(k-1) ||r_1||`` never drops below ``||r_1||``, so with a threshold
    below every first residual plain Picard iteration never converges. (Not ``rel``: ``||f(z)||`` grows
    along a translation, so a relative residual may legitimately fall below any threshold.)"""
    if translation:
        m.a = torch.eye(m.a.shape[0], dtype=torch.float64)
    f1 = m(m.z0, None)
    r1 = METRICS[metric](f1, m.z0)
    assume(bool((r1 > 0).all()))
    cfg = SolverConfig(metric=metric, threshold=float(r1.min()) * frac, max_iterations=max_iterations)
    res = iterate(m, m.z0.clone(), cfg)
    assert not bool(res.converged.any()), (res.status, res.residual[metric], cfg.threshold)
    assert set(res.status.tolist()) <= {Status.MAX_ITERATIONS, Status.GROWTH}


@given(
    n=st.integers(1, 6),
    d=st.integers(1, 6),
    poison=st.data(),
    bad=st.sampled_from([math.nan, math.inf, -math.inf]),
    k0=st.integers(1, 8),
    metric=S.metric_names,
)
def test_maps_that_produce_nonfinite_values_report_divergence(n, d, poison, bad, k0, metric):
    """Rows in ``mask`` return a non-finite entry from call ``k0`` on (a translation otherwise, which never
    converges): they end as ``nonfinite`` (diverged) at iteration k0 with a finite context; others run on."""
    mask = torch.tensor(poison.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    col = poison.draw(st.integers(0, d - 1))
    calls = {"k": 0}

    def fn(z, rows):
        calls["k"] += 1
        out = z + 1.0
        if calls["k"] >= k0:
            hit = mask if rows is None else mask[rows]
            out[hit, col] = bad
        return out

    cfg = SolverConfig(metric=metric, threshold=1e-3, max_iterations=10)
    res = iterate(fn, torch.zeros(n, d, dtype=torch.float64), cfg)
    assert not bool(res.converged.any())
    assert res.diverged.tolist() == mask.tolist()
    assert bool((res.status[mask] == Status.NONFINITE).all()) and bool((res.iterations[mask] == k0).all())
    assert bool((res.status[~mask] == Status.MAX_ITERATIONS).all())
    assert bool(torch.isfinite(res.context).all())


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@given(case=S.model_cases(max_tokens=6), which=st.integers(0, 2))
def test_a_model_with_nonfinite_weights_reports_divergence(case, which, bad):
    """Tokens whose first image ``f(0)`` is non-finite end ``nonfinite`` (diverged) at iteration 1.
    (A weight set to inf need not poison the output: a clamp or a 1-dim LayerNorm can absorb it.)"""
    m = build_model(case.config, seed=case.seed).eval()
    params = [m.token_embedding.weight, m.blocks[0].gates.weight, m.blocks[-1].norm.bias]
    with torch.no_grad():
        params[which].fill_(bad)
        first = m(case.ids)
    poisoned = ~torch.isfinite(first).all(dim=-1)
    assume(bool(poisoned.any()))
    res = solve(m, case.ids, SolverConfig(max_iterations=5))
    assert bool((res.status[poisoned] == Status.NONFINITE).all()), (res.status, poisoned)
    assert bool((res.iterations[poisoned] == 1).all()), res.iterations
    assert bool(torch.isfinite(res.context[res.converged]).all())
