"""Known answers for the contraction toolkit (newllm.contraction).

Linear maps with a prescribed spectral norm and spectral radius (orthogonal x scale: σ_max = ρ;
non-normal Q T Qᵀ: ρ = 0.8 < 1 < σ_max), then a tiny CVFP model against its exact Jacobian.
Tolerances: exact values 1e-10; full-dimension Krylov (k = D) 1e-8; power iteration 1e-6;
lower bounds never above exact by more than 1e-12 relative; observed rate 1e-6 on a map whose
residual shrinks exactly geometrically, 1e-2 on a non-normal one.
"""

import json
import math

import pytest
import torch
from torch.func import jacrev

from newllm import SolverConfig, iterate, solve
from newllm import contraction as C
from newllm.cli.main import main
from newllm.runs.jsonio import dumps
from tests.helpers import tiny_model

D = 12
SCALES = torch.tensor([0.5, 0.9, 1.3], dtype=torch.float64)


def orthogonal(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, d, d, generator=g, dtype=torch.float64))
    return q


def scaled_orthogonal() -> torch.Tensor:
    """``[3, D, D]``: σ_max = ρ = 0.5, 0.9, 1.3."""
    return SCALES.view(-1, 1, 1) * orthogonal(3, D)


def nonnormal(seed: int, d: int = 16, rho: float = 0.8) -> torch.Tensor:
    """``Q T Qᵀ``, T upper triangular: eigenvalues ``rho`` and U(-0.5, 0.5); σ_max ≈ 1.1 > 1 > ρ."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    lam = torch.empty(d, dtype=torch.float64).uniform_(-0.5, 0.5, generator=g)
    lam[0] = rho
    upper = torch.triu(torch.randn(d, d, generator=g, dtype=torch.float64), 1)
    return q @ (torch.diag(lam) + 0.6 * upper / math.sqrt(d)) @ q.T


NONNORMAL = torch.stack([nonnormal(s) for s in range(3)])


def points(a: torch.Tensor, seed: int = 1) -> torch.Tensor:
    return torch.randn(a.shape[0], a.shape[-1], generator=torch.Generator().manual_seed(seed), dtype=a.dtype)


def truth(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.linalg.svdvals(a)[:, 0], torch.linalg.eigvals(a).abs().amax(-1)


@pytest.fixture(params=["orthogonal", "nonnormal"])
def case(request):
    a = scaled_orthogonal() if request.param == "orthogonal" else NONNORMAL
    sigma, rho = truth(a)
    return C.linear_map(a), points(a), a, sigma, rho


def assert_lower_bound(est: C.Estimate, exact: torch.Tensor) -> None:
    assert est.kind == "lower_bound"
    assert bool((est.values <= exact * (1 + 1e-12)).all()), (est.values, exact)


# --- known answers on linear maps ----------------------------------------------------------------


def test_the_cases_have_the_prescribed_norms():
    sigma, rho = truth(scaled_orthogonal())
    torch.testing.assert_close(sigma, SCALES, rtol=1e-12, atol=0)
    torch.testing.assert_close(rho, SCALES, rtol=1e-12, atol=0)
    sigma, rho = truth(NONNORMAL)
    torch.testing.assert_close(rho, torch.full((3,), 0.8, dtype=torch.float64), rtol=1e-10, atol=0)
    assert bool((sigma > 1.05).all()), sigma  # expanding in norm, yet ρ < 1


def test_jacobian_and_exact_values(case):
    fn, z, a, sigma, rho = case
    torch.testing.assert_close(C.jacobian(fn, z), a, rtol=0, atol=1e-14)
    ex = C.exact(fn, z)
    assert ex["sigma_max"].kind == ex["spectral_radius"].kind == "exact"
    torch.testing.assert_close(ex["sigma_max"].values, sigma, rtol=1e-10, atol=0)
    torch.testing.assert_close(ex["spectral_radius"].values, rho, rtol=1e-10, atol=0)


@pytest.mark.parametrize("mode", ["jvp", "vjp"])
def test_sigma_max_lanczos_and_power(case, mode):
    fn, z, _, sigma, _ = case
    full = C.sigma_max(fn, z, iterations=z.shape[1], mode=mode)
    assert full.details["iterations"] == z.shape[1] and mode in full.method
    torch.testing.assert_close(full.values, sigma, rtol=1e-8, atol=0)
    assert_lower_bound(full, sigma)
    power = C.sigma_max(fn, z, method="power", iterations=1000, tol=1e-13, mode=mode)
    torch.testing.assert_close(power.values, sigma, rtol=1e-6, atol=0)
    assert_lower_bound(power, sigma)
    for k in (1, 2, 4):  # short runs are still lower bounds
        assert_lower_bound(C.sigma_max(fn, z, iterations=k, mode=mode, seed=k), sigma)
        assert_lower_bound(C.sigma_max(fn, z, method="power", iterations=k, mode=mode, seed=k), sigma)


def test_vjp_fallback_matches_forward_mode(case):
    fn, z, *_ = case
    fwd, rev = C.Products(fn, z, "jvp"), C.Products(fn, z, "vjp")
    v = points(z.unsqueeze(-1).expand(-1, -1, z.shape[1]), seed=7)
    torch.testing.assert_close(rev.jv(v), fwd.jv(v), rtol=1e-12, atol=1e-14)
    assert C.Products(fn, z).mode == "vjp"


def test_spectral_radius_exact_auto_and_arnoldi(case):
    fn, z, _, _, rho = case
    auto = C.spectral_radius(fn, z)
    assert auto.kind == "exact"
    torch.testing.assert_close(auto.values, rho, rtol=1e-10, atol=0)
    full = C.spectral_radius(fn, z, method="arnoldi", krylov_dim=z.shape[1])
    assert full.kind == "estimate"
    torch.testing.assert_close(full.values, rho, rtol=1e-8, atol=0)
    for mode in ("jvp", "vjp"):
        torch.testing.assert_close(C.arnoldi(fn, z, krylov_dim=40, mode=mode).values, rho, rtol=1e-8, atol=0)


def test_arnoldi_short_krylov_finds_an_isolated_dominant_eigenvalue():
    fn, z = C.linear_map(NONNORMAL), points(NONNORMAL)
    est = C.arnoldi(fn, z, krylov_dim=12)
    torch.testing.assert_close(est.values, truth(NONNORMAL)[1], rtol=1e-3, atol=0)
    assert bool((est.details["ritz_residual"] < 1e-2).all())


def complex_dominant(d: int = 16, seed: int = 4) -> torch.Tensor:
    """``[2, D, D]``: a dominant complex pair ``0.9 e^{±0.7i}`` (a rotation block), the rest <= 0.4."""
    out = []
    for s in range(2):
        g = torch.Generator().manual_seed(seed + s)
        t = torch.diag(torch.empty(d, dtype=torch.float64).uniform_(-0.4, 0.4, generator=g))
        c, sn = 0.9 * math.cos(0.7), 0.9 * math.sin(0.7)
        t[:2, :2] = torch.tensor([[c, -sn], [sn, c]], dtype=torch.float64)
        t = t + 0.2 * torch.triu(torch.randn(d, d, generator=g, dtype=torch.float64), 2) / math.sqrt(d)
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        out.append(q @ t @ q.T)
    return torch.stack(out)


def test_complex_dominant_pair_arnoldi_and_observed_factor():
    a = complex_dominant()
    rho = truth(a)[1]
    torch.testing.assert_close(rho, torch.full((2,), 0.9, dtype=torch.float64), rtol=1e-10, atol=0)
    est = C.arnoldi(C.linear_map(a), points(a), krylov_dim=10)
    torch.testing.assert_close(est.values, rho, rtol=1e-3, atol=0)
    b = points(a, seed=3)
    cfg = SolverConfig(metric="l2", threshold=1e-13, max_iterations=400, record_trace=True)
    res = iterate(affine_rows(a, b), 0 * b, cfg)
    torch.testing.assert_close(C.observed_factor(res).values, rho, rtol=1e-2, atol=0)


def test_pair_ratio_is_a_lower_bound_that_ascent_sharpens(case):
    fn, z, _, sigma, _ = case
    plain = C.pair_ratio(fn, z, pairs=4, seed=3)
    assert_lower_bound(plain, sigma)
    assert plain.details["by_radius"].shape == (3, len(C.DEFAULT_RADII))
    sharp = C.pair_ratio(fn, z, pairs=4, ascent_steps=40, seed=3)
    assert_lower_bound(sharp, sigma)
    assert bool((sharp.values >= plain.values).all())
    torch.testing.assert_close(sharp.values, sigma, rtol=2e-3, atol=0)


def affine_rows(a: torch.Tensor, b: torch.Tensor):
    """The solver's row map of ``z -> A_i z + b_i``."""

    def fn(z, rows):
        return C.linear_map(a, b)(z) if rows is None else C.linear_map(a[rows], b[rows])(z)

    return fn


def test_observed_factor_is_exact_on_a_scaled_orthogonal_map():
    # residual g_{k+1} = A g_k with A = 0.5 Q, 0.9 Q: it shrinks by exactly the scale per iteration
    a = scaled_orthogonal()[:2]
    b = points(a)
    cfg = SolverConfig(metric="l2", threshold=1e-9, max_iterations=400, record_trace=True)
    res = iterate(affine_rows(a, b), 0 * b, cfg)
    assert bool(res.converged.all())
    rate = C.observed_factor(res)
    assert rate.kind == "estimate"
    torch.testing.assert_close(rate.values, SCALES[:2], rtol=1e-6, atol=0)
    pred = rate.details["predicted_iterations"]
    assert bool(((pred - res.iterations.double()).abs() <= 1).all()), (pred, res.iterations)
    first = torch.linalg.vector_norm(b, dim=-1)  # residual of iteration 1 from z = 0
    from_rate = C.predict_iterations(SCALES[:2], first, 1e-9)
    assert bool(((from_rate - res.iterations.double()).abs() <= 1).all()), (from_rate, res.iterations)


def test_observed_factor_approaches_rho_on_a_nonnormal_affine_map():
    # σ_max > 1: the residual first grows, then shrinks at ρ = 0.8
    b = points(NONNORMAL)
    cfg = SolverConfig(metric="mse", threshold=1e-24, max_iterations=150, record_trace=True)
    res = iterate(affine_rows(NONNORMAL, b), 0 * b, cfg)
    for metric in ("l2", "mse", "rms"):
        torch.testing.assert_close(
            C.observed_factor(res, metric=metric).values,
            torch.full((3,), 0.8, dtype=torch.float64),
            rtol=1e-2,
            atol=0,
        )


def test_observed_factor_needs_a_trace_and_predict_handles_edges():
    res = iterate(lambda z, rows: 0.5 * z, torch.ones(2, 3, dtype=torch.float64), SolverConfig(metric="l2"))
    with pytest.raises(ValueError, match="record_trace=True"):
        C.observed_factor(res)
    p = C.predict_iterations(torch.tensor([0.5, 1.0, 2.0, 0.5]), torch.tensor([1.0, 1.0, 1.0, 1e-3]), 1e-2)
    assert p.tolist() == [8.0, math.inf, math.inf, 1.0]


def test_estimate_labels_and_summaries():
    e = C.Estimate("x", "lower_bound", "m", torch.tensor([0.5, math.nan, 2.0, 1.0]))
    assert e.max == 2.0 and e.median == 1.0 and e.fraction_below(1.0) == 0.25
    d = e.to_dict()
    assert d["kind"] == "lower_bound" and d["values"][0] == 0.5 and d["max"] == 2.0
    with pytest.raises(ValueError, match="kind must be one of"):
        C.Estimate("x", "upper_bound", "m", torch.zeros(1))


def test_bad_inputs_raise_with_a_message():
    fn = C.linear_map(scaled_orthogonal())
    with pytest.raises(ValueError, match=r"points \[N, D\]"):
        C.sigma_max(fn, torch.zeros(3, 2, D, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN or inf"):
        C.exact(fn, torch.full((3, D), math.nan, dtype=torch.float64))
    with pytest.raises(ValueError, match="mode must be"):
        C.sigma_max(fn, torch.zeros(3, D, dtype=torch.float64), mode="fwd")
    with pytest.raises(ValueError, match="method must be"):
        C.spectral_radius(fn, torch.zeros(3, D, dtype=torch.float64), method="qr")
    with pytest.raises(ValueError, match="positive radii"):
        C.pair_ratio(fn, torch.zeros(3, D, dtype=torch.float64), radii=(0.0,))


def test_random_estimators_replay_from_their_seed_or_generator():
    fn, z = C.linear_map(NONNORMAL), points(NONNORMAL)
    a = C.sigma_max(fn, z, iterations=3, generator=torch.Generator().manual_seed(5)).values
    b = C.sigma_max(fn, z, iterations=3, seed=5).values
    assert torch.equal(a, b)
    assert torch.equal(C.pair_ratio(fn, z, seed=2).values, C.pair_ratio(fn, z, seed=2).values)
    assert not torch.equal(
        C.arnoldi(fn, z, krylov_dim=3, seed=1).values, C.arnoldi(fn, z, krylov_dim=3, seed=2).values
    )


# --- a tiny CVFP model against its exact Jacobian --------------------------------------------------

IDS = [3, 17, 29, 41]


@pytest.fixture(scope="module")
def tiny():
    """A float64 Layer-wise model with dims 8/16 and its (Picard) fixed points for IDS.

    init_std 0.5 makes the map non-normal: σ_max > 1 > ρ for some tokens, ρ <= 0.65 for all.
    """
    m = tiny_model(seed=2, arch="layerwise", init_std=0.5).double().eval()
    res = solve(m, IDS, SolverConfig(metric="rel", threshold=1e-14, max_iterations=500))
    assert bool(res.converged.all())
    return m, res.context


def test_model_jacobian_equals_jacrev_per_token(tiny):
    m, z = tiny
    jac = C.jacobian(C.model_map(m, IDS), z)
    emb = m.embed(IDS)
    for i in range(len(IDS)):
        ref = jacrev(lambda c, e=emb[i]: m.step(e, c))(z[i])
        torch.testing.assert_close(jac[i], ref, rtol=1e-12, atol=1e-12)


def test_estimators_agree_with_the_exact_jacobian_of_a_tiny_model(tiny):
    m, z = tiny
    fn = C.model_map(m, IDS)
    ex = C.exact(fn, z)
    sigma, rho = ex["sigma_max"].values, ex["spectral_radius"].values
    for mode in ("jvp", "vjp"):
        est = C.sigma_max(fn, z, mode=mode)
        torch.testing.assert_close(est.values, sigma, rtol=1e-8, atol=0)
        assert_lower_bound(est, sigma)
        torch.testing.assert_close(C.arnoldi(fn, z, mode=mode).values, rho, rtol=1e-8, atol=0)
    assert bool((sigma > 1).any() & (rho < 0.7).all()), (sigma, rho)
    power = C.sigma_max(fn, z, method="power", iterations=300, tol=1e-12)
    assert_lower_bound(power, sigma)
    torch.testing.assert_close(power.values, sigma, rtol=1e-4, atol=0)
    # pairs at a tiny radius see the linearisation: close to σ_max after ascent, not above it
    near = C.pair_ratio(fn, z, radii=(1e-7,), pairs=4, ascent_steps=40)
    torch.testing.assert_close(near.values, sigma, rtol=2e-3, atol=0)
    assert bool((near.values <= sigma * (1 + 1e-5)).all())


def test_observed_picard_rate_matches_rho_on_a_tiny_model(tiny):
    m, z = tiny
    rho = C.exact(C.model_map(m, IDS), z)["spectral_radius"].values
    res = solve(m, IDS, SolverConfig(metric="rel", threshold=1e-13, max_iterations=500, record_trace=True))
    torch.testing.assert_close(C.observed_factor(res).values, rho, rtol=2e-2, atol=0)


def test_model_map_refuses_train_mode_and_wrong_shapes(tiny):
    m, z = tiny
    fn = C.model_map(m, IDS)
    with pytest.raises(ValueError, match=r"contexts \[N=4"):
        fn(z[:2])
    with C.eval_mode(m):
        pass
    m.train()
    try:
        with pytest.raises(ValueError, match="train mode"):
            fn(z)
        with C.eval_mode(m):
            fn(z)
        assert m.training
    finally:
        m.eval()


def test_report_keys_kinds_and_consistency():
    m = tiny_model(seed=2, arch="sequential", init_std=0.2)
    m.train()
    rep = C.contraction_report(m, IDS, picard_iterations=100, refine_iterations=100, pairs=2, ascent_steps=2)
    assert m.training and next(m.parameters()).dtype == torch.float32  # the caller's model is untouched
    for key in ("sigma_max", "spectral_radius", "pair_ratio", "observed_factor"):
        assert len(rep[key]["values"]) == len(IDS) and {"max", "median", "kind"} <= set(rep[key])
    assert rep["sigma_max"]["kind"] == rep["spectral_radius"]["kind"] == "exact"
    assert rep["pair_ratio"]["kind"] == "lower_bound" and rep["observed_factor"]["kind"] == "estimate"
    sig = torch.tensor(rep["sigma_max"]["values"])
    assert rep["contractive"] == float((sig < 1).double().mean())
    assert all(
        r <= s * (1 + 1e-9) for r, s in zip(rep["spectral_radius"]["values"], sig.tolist(), strict=True)
    )
    assert {"effective_rank", "max_cosine", "collapsed"} <= set(rep["collapse"])
    it = C.contraction_report(
        m, IDS, picard_iterations=100, refine_iterations=100, spectral="iterative", pairs=2
    )
    assert it["sigma_max"]["kind"] == "lower_bound" and it["spectral_radius"]["kind"] == "estimate"
    torch.testing.assert_close(torch.tensor(it["sigma_max"]["values"]), sig, rtol=1e-8, atol=0)
    json.loads(dumps(rep))


# --- command line ---------------------------------------------------------------------------------


def test_contraction_cli_json(capsys):
    argv = ["contraction", "--arch", "layerwise", "--dim", "8", "--vocab-size", "64", "--tokens", "3"]
    fast = ["--refine-iterations", "20", "--pairs", "2", "--ascent-steps", "0"]
    code = main([*argv, *fast, "--picard-iterations", "100", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    o = json.loads(out)
    for key in ("sigma_max", "spectral_radius", "pair_ratio", "observed_factor"):
        assert len(o[key]["values"]) == 3 and "max" in o[key] and "median" in o[key]
    assert 0 <= o["contractive"] <= 1 and o["token_ids"] == [21, 42, 63]
    assert o["arch"] == "layerwise" and "effective_rank" in o["collapse"]
    code = main([*argv, *fast, "--picard-iterations", "20"])
    table = capsys.readouterr().out
    assert code == 0 and "sigma_max" in table and "median" in table and "contractive" in table


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pairs", "0"], "argument --pairs: expected an integer in [1, 10000], got 0"),
        (["--threshold", "0"], "argument --threshold: expected a finite number in (0, inf), got 0"),
        (["--checkpoint", "/nonexistent/run", "--dim", "8"], "cannot be combined with --checkpoint"),
    ],
)
def test_contraction_cli_errors(capsys, extra, message):
    code = main(["contraction", "--tokens", "2", "--vocab-size", "64", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
