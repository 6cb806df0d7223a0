"""Family 3: contraction after training (models and recipes: ``properties/contraction_models.py``).

A tiny Layer-wise model trained with ``jacobian_weight > 0`` (once per run and code version, shared
by the xdist workers through a file lock) must be a contraction where it is used: at every trained
token's fixed point σ_max < 1 (exact, from the full Jacobian) with distinct contexts; sampled pair
ratios around the fixed point < 1; the fixed point unique (from zeros, random starts and in carry
mode the solver lands within ``tol / (1 - k)`` of the float64 reference, ``k`` = the largest σ_max at
the fixed points, ``tol`` the l2 threshold); the residual's observed rate within 0.1 of ρ.

A model trained with the seeds' settings (jacobian_weight 0) is reported as it is: the checks are on
the report's honesty (σ_max, ρ, contractive fraction, the fixed points it could not find), not on k < 1.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, target
from hypothesis import strategies as st

from newllm import SolverConfig, diagnostics, solve
from properties import contraction_models as CM
from properties import exact
from properties import strategies as S

RATE_TOLERANCE = 0.1


@pytest.fixture(scope="session")
def contractive(model_cache):
    return CM.load("contractive", model_cache)


@pytest.fixture(scope="session")
def seeds_trained(model_cache):
    return CM.load("seeds", model_cache)


def test_every_trained_token_is_contractive_at_its_fixed_point(contractive):
    t = contractive
    assert bool(t.found.all()), "the float64 reference did not converge for every trained token"
    assert bool((t.sigma < 1).all()), f"sigma_max >= 1 at tokens {t.ids[t.sigma >= 1].tolist()}: {t.sigma}"
    assert bool((t.rho <= t.sigma + 1e-9).all())  # rho <= ||J||_2 always
    report = diagnostics.collapse_report(t.fixed, t.ids)
    assert not diagnostics.is_collapsed(report), f"contraction by collapse is not a success: {report}"


@given(
    token=st.integers(0, CM.TOKENS - 1),
    seed=S.seeds,
    radius_a=S.log_uniform(1e-3, 1.0),
    radius_b=S.log_uniform(1e-3, 1.0),
)
def test_sampled_pair_ratio_is_below_one(contractive, token, seed, radius_a, radius_b):
    """Pairs ``c* + r ||c*|| u`` with random unit ``u`` and r in [1e-3, 1]: near and far from the fixed
    point. ``target`` pushes the search towards large ratios (most effective under ``thorough``)."""
    t = contractive
    c = t.fixed[token]
    g = S.generator(seed)
    u = torch.randn(2, c.numel(), generator=g, dtype=torch.float64)
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    scale = torch.linalg.vector_norm(c)
    pts = torch.stack([c + radius_a * scale * u[0], c + radius_b * scale * u[1]])
    with torch.no_grad():
        f = t.model64.step(t.model64.embed(t.ids[token].expand(2)), pts)
    ratio = float(torch.linalg.vector_norm(f[0] - f[1]) / torch.linalg.vector_norm(pts[0] - pts[1]))
    target(ratio, label="pair ratio ||f(a)-f(b)|| / ||a-b||")
    assert ratio < 1, f"pair ratio {ratio:.4f} >= 1 around token {int(t.ids[token])}"


@given(
    start=st.sampled_from(["zeros", "random", "carry"]),
    seed=S.seeds,
    scale=S.log_uniform(1e-2, 10.0),
    tol=S.log_uniform(1e-4, 1e-1),
    anderson=st.booleans(),
    data=st.data(),
)
def test_the_fixed_point_is_unique(contractive, start, seed, scale, tol, anderson, data):
    t = contractive
    k = float(t.sigma.max().detach())
    assert k < 1, f"no contraction to bound the distance with: max sigma_max {k:.4f}"
    n = CM.TOKENS
    cfg = SolverConfig(
        metric="l2", threshold=tol, max_iterations=500, method="anderson" if anderson else "picard"
    )
    order = torch.arange(n)
    if start == "carry":
        order = torch.tensor(data.draw(st.permutations(range(n))))
        res = solve(t.model, t.ids[order], SolverConfig(**{**cfg.to_dict(), "context_mode": "carry"}))
    else:
        init = None
        if start == "random":
            d = t.model.config.context_dim
            init = torch.randn(n, d, generator=S.generator(seed)) * scale * math.sqrt(d)
        res = solve(t.model, t.ids, cfg, init=init)
    assert bool(res.converged.all()), res.status
    gap = torch.linalg.vector_norm(res.context.double() - t.fixed[order], dim=-1)
    bound = tol / (1 - k) + 1e-5  # + float32 rounding of the contexts
    assert bool((gap <= bound).all()), f"landed {gap.max():.3g} from the fixed point (bound {bound:.3g})"


def test_the_observed_factor_agrees_with_rho(contractive):
    t = contractive
    q = exact.fitted_rate(t.trace)
    assert bool(torch.isfinite(q).all()), q
    gap = (q - t.rho).abs()
    assert bool((gap <= RATE_TOLERANCE).all()), f"observed rate {q} vs rho {t.rho}"
    assert bool((q < 1).all())


def test_a_model_trained_with_the_seeds_settings_is_reported_as_it_is(seeds_trained):
    """No k < 1 is assumed: whatever the numbers, the report must state them and its summary must
    follow from them."""
    contraction = pytest.importorskip(
        "newllm.contraction", reason="the contraction toolkit is not merged yet"
    )
    t = seeds_trained
    report = contraction.contraction_report(t.model, t.ids, seed=0)
    sig = torch.tensor(report["sigma_max"]["values"], dtype=torch.float64)
    rho = torch.tensor(report["spectral_radius"]["values"], dtype=torch.float64)
    assert report["contractive"] == pytest.approx(float((sig < 1).double().mean()))
    assert bool((rho <= sig + 1e-9).all())
    # where both the report and the reference found the fixed point, the exact values agree
    both = t.found & torch.tensor(report["fixed_point"]["converged"])
    torch.testing.assert_close(sig[both], t.sigma[both], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rho[both], t.rho[both], rtol=1e-5, atol=1e-6)
