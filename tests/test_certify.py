"""A posteriori error bounds (newllm.certify): known answers on affine and cubic maps, the model path."""

from __future__ import annotations

import math

import pytest
import torch

from newllm import SolverConfig, solve
from newllm.certify import certify_map
from newllm.result import BoundKind
from tests.helpers import tiny_model

F64 = torch.float64


def _affine(eigs: list[float], seed: int = 0):
    """Rows ``z -> A z + b`` with symmetric ``A`` of the given eigenvalues; returns (map, fixed point, eigvecs)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=F64))
    a = q @ torch.diag(torch.tensor(eigs, dtype=F64)) @ q.T
    b = torch.randn(3, len(eigs), generator=g, dtype=F64)
    star = torch.linalg.solve(torch.eye(len(eigs), dtype=F64) - a, b.T).T
    return (lambda z, rows: z @ a.T + (b if rows is None else b[rows])), star, q


def test_contraction_bound_on_an_affine_contraction_is_exact_and_above_the_distance():
    fn, star, q = _affine([0.9, 0.5, -0.3, 0.1])
    err = 1e-3 * q[:, 0].expand(3, 4)  # along the slow direction: the residual is 10x smaller than the error
    cert = certify_map(fn, star + err)
    dist = torch.linalg.vector_norm(err, dim=-1)
    assert (cert.kind == BoundKind.CONTRACTION).all()
    assert torch.allclose(cert.residual, 0.1 * dist, rtol=1e-9)
    assert (cert.bound >= dist * (1 - 1e-9)).all() and (cert.bound <= 10 * dist).all()
    torch.testing.assert_close(cert.sigma_max, torch.full((3,), 0.9, dtype=F64))
    torch.testing.assert_close(cert.gamma, torch.zeros(3, dtype=F64))  # affine: J is constant


def test_linearised_bound_where_the_map_expands():
    fn, star, q = _affine([1.5, 0.5, -2.0, 0.2])
    err = 1e-4 * (q[:, 0] + q[:, 1]).expand(3, 4)
    cert = certify_map(fn, star + err)
    dist = torch.linalg.vector_norm(err, dim=-1)
    assert (cert.kind == BoundKind.LINEARISED).all()  # sigma_max = 2 > 1: no contraction certificate
    torch.testing.assert_close(cert.bound, dist, rtol=1e-9, atol=0)  # exact Newton step on an affine map
    torch.testing.assert_close(cert.sigma_min, torch.full((3,), 0.5, dtype=F64))


def test_a_triple_root_is_never_certified():
    # f(z) = z - z^3: F(z) = z^3 has a triple root at 0, sigma_min(I - J) -> 0 as c -> 0 faster than the residual
    cert = certify_map(lambda z, rows: z - z.pow(3), torch.tensor([[0.1], [0.01], [-0.05]], dtype=F64))
    assert (cert.kind == BoundKind.NONE).all() and torch.isinf(cert.bound).all()
    assert (cert.kantorovich_h > 0.5).all()


def test_nonlinear_contraction_bounds_hold_against_the_true_fixed_point():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 6, generator=g, dtype=F64)
    w = 0.8 * w / torch.linalg.matrix_norm(w, ord=2)
    b = torch.randn(5, 6, generator=g, dtype=F64)

    def fn(z, rows):
        return torch.tanh(z @ w.T + (b if rows is None else b[rows]))

    from newllm.solvers import iterate

    star = iterate(fn, torch.zeros(5, 6, dtype=F64), SolverConfig(metric="l2", threshold=1e-14, max_iterations=500)).context
    c = star + 1e-3 * torch.randn(5, 6, generator=g, dtype=F64)
    cert = certify_map(fn, c)
    dist = torch.linalg.vector_norm(c - star, dim=-1)
    assert (cert.kind != BoundKind.NONE).all()
    assert (cert.bound >= dist).all() and (cert.bound <= 10 * dist).all()


def test_solve_certify_fills_the_result_and_the_bounds_hold_on_a_model():
    m = tiny_model(seed=3).double().eval()
    ids = [1, 5, 9, 17]
    cfg = SolverConfig(metric="rel", threshold=1e-6, max_iterations=300, method="anderson")
    r = solve(m, ids, cfg, certify=True)
    assert r.error_bound.shape == (4,) and r.error_bound.dtype == F64 and r.error_bound_kind.shape == (4,)
    ref = solve(m, ids, SolverConfig(metric="rel", threshold=1e-13, max_iterations=50, method="newton"), init=r.context)
    assert ref.converged.all()
    dist = torch.linalg.vector_norm(r.context - ref.context, dim=-1)
    ok = r.certified
    assert ok.any()
    assert (r.error_bound[ok] >= dist[ok]).all() and (r.error_bound[ok] <= 10 * dist[ok]).all()
    s = r.summary()
    assert s["error_bound_kind"] == r.bound_kind_names() and len(s["error_bound"]) == 4
    assert r.reshaped((2, 2)).error_bound.shape == (2, 2)


def test_certify_needs_a_deterministic_map():
    m = tiny_model(dropout=0.2)
    with pytest.raises(ValueError, match="deterministic"):
        solve(m, [1, 2], SolverConfig(train_mode=True), certify=True)
    r = solve(m, [1, 2], SolverConfig(train_mode=True, dropout_mode="fixed", metric="rel", threshold=1e-5,
                                      max_iterations=300, method="anderson"), certify=True,
              generator=torch.Generator().manual_seed(0))
    assert r.error_bound.shape == (2,) and not math.isnan(float(r.error_bound.sum()))
