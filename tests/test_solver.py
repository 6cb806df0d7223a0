import math

import pytest
import torch

import newllm
from newllm import SolverConfig, iterate, solve
from newllm.stop import Status
from tests.helpers import tiny_model


def scripted(residuals: list[list[float]]):
    """A 1-D map whose row i moves by residuals[i][k-1] at call k: its l2 residual sequence is prescribed."""
    table = torch.tensor(residuals, dtype=torch.float64)  # [N, K]
    calls = {"k": 0}

    def fn(z, rows):
        k = calls["k"]
        calls["k"] += 1
        step = table[:, k] if rows is None else table[rows, k]
        return z + step.unsqueeze(-1)

    return fn


def run(residuals, **kw):
    cfg = SolverConfig(metric="l2", divergence_factor=None, **{"max_iterations": len(residuals[0]), **kw})
    return iterate(scripted(residuals), torch.zeros(len(residuals), 1, dtype=torch.float64), cfg)


def test_converges_at_first_iteration_below_threshold_and_keeps_the_count():
    r = run([[1.0, 0.5, 0.009, 0.001, 0.5], [1, 1, 1, 1, 1], [0.001, 1, 1, 1, 1]], threshold=0.01)
    assert r.iterations.tolist() == [3, 5, 1]
    assert r.status.tolist() == [Status.CONVERGED, Status.MAX_ITERATIONS, Status.CONVERGED]
    assert r.evaluations.tolist() == [3, 5, 1]
    assert r.rate == pytest.approx(2 / 3)
    assert r.mean_iterations == pytest.approx(3.0)
    assert r.mean_iterations_converged == pytest.approx(2.0)


def test_threshold_is_strict():
    r = run([[0.01, 0.01, 0.0099]], threshold=0.01)
    assert r.iterations.tolist() == [3]


def test_warmup_delays_the_check():
    r = run([[0.001, 0.001, 0.001, 0.001, 0.001], [0.001, 1, 1, 0.001, 1]], threshold=0.01, warmup=3)
    assert r.iterations.tolist() == [4, 4]
    r = run([[0.001, 1, 1, 1, 1]], threshold=0.01, warmup=1)
    assert r.status.tolist() == [Status.MAX_ITERATIONS]


def test_nonfinite_is_diverged_never_converged():
    r = run([[1.0, math.nan, 0.0], [1.0, math.inf, 0.0]], threshold=0.01)
    assert r.status.tolist() == [Status.NONFINITE, Status.NONFINITE]
    assert r.iterations.tolist() == [2, 2]
    assert bool(r.diverged.all()) and not bool(r.converged.any())
    assert torch.isfinite(r.context).all()


def test_growth_guard():
    cfg = SolverConfig(metric="l2", max_iterations=4, divergence_factor=10.0, threshold=1e-9)
    r = iterate(scripted([[1.0, 0.5, 100.0, 0.0]]), torch.zeros(1, 1, dtype=torch.float64), cfg)
    assert r.status.tolist() == [Status.GROWTH] and r.iterations.tolist() == [3]


def test_stall_guard():
    cfg = SolverConfig(metric="l2", max_iterations=20, stall_window=3, threshold=1e-9, divergence_factor=None)
    r = iterate(scripted([[1.0] + [0.5] * 19]), torch.zeros(1, 1, dtype=torch.float64), cfg)
    assert r.status.tolist() == [Status.STALLED] and r.iterations.tolist() == [5]


def test_trace_records_every_metric_and_nan_after_stop():
    r = run([[1.0, 0.001, 9.0], [1.0, 1.0, 1.0]], threshold=0.01, record_trace=True)
    assert set(r.trace) == {"mse", "l2", "rms", "rel"}
    l2 = r.trace["l2"]
    assert l2.shape == (3, 2)
    assert l2[:, 1].tolist() == [1.0, 1.0, 1.0]
    assert l2[0, 0] == 1.0 and l2[1, 0].item() == pytest.approx(0.001) and math.isnan(l2[2, 0])


def test_first_iteration_is_model_step_bitwise():
    m = tiny_model(structure=(2, 1)).eval()
    ids = torch.tensor([3, 9, 27])
    r = solve(m, ids, SolverConfig(max_iterations=1, threshold=1e-30))
    with torch.no_grad():
        expect = m.step(m.embed(ids), torch.zeros(3, 8))
    assert torch.equal(r.context, expect)


def test_k_iterations_equal_k_steps_bitwise():
    m = tiny_model().eval()
    ids = torch.tensor([1, 2, 3, 4])
    r = solve(m, ids, SolverConfig(max_iterations=7, threshold=1e-30))
    with torch.no_grad():
        e, c = m.embed(ids), torch.zeros(4, 8)
        for _ in range(7):
            c = m.step(e, c)
    assert torch.equal(r.context, c)


def test_solve_is_deterministic_and_restores_mode():
    m = tiny_model(dropout=0.3)
    m.train()
    cfg = SolverConfig(train_mode=True, max_iterations=20)
    a = solve(m, [1, 2, 3], cfg, generator=torch.Generator().manual_seed(5))
    b = solve(m, [1, 2, 3], cfg, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.context, b.context) and m.training
    m.eval()
    solve(m, [1], cfg)
    assert not m.training


def test_token_shape_is_kept():
    m = tiny_model()
    r = solve(m, torch.tensor([[1, 2, 3], [4, 5, 6]]))
    assert r.context.shape == (2, 3, 8) and r.iterations.shape == (2, 3)


def test_carry_mode_starts_from_the_previous_fixed_point():
    m = tiny_model().eval()
    cfg = SolverConfig(context_mode="carry", threshold=1e-6, max_iterations=300)
    r = solve(m, [5, 6, 7], cfg)
    r1 = solve(m, [6], SolverConfig(threshold=1e-6, max_iterations=300), init=r.context[0])
    assert torch.equal(r.context[1], r1.context[0])
    assert r.iterations[1] == r1.iterations[0]


def test_init_is_validated():
    m = tiny_model()
    with pytest.raises(ValueError, match="context dim"):
        solve(m, [1], init=torch.zeros(3))
    with pytest.raises(ValueError, match="NaN or inf"):
        solve(m, [1], init=torch.full((8,), math.nan))


def test_float64_and_batch_invariance():
    m = tiny_model().double().eval()
    cfg = SolverConfig(threshold=1e-10, max_iterations=500)
    whole = solve(m, [1, 2, 3, 4, 5], cfg)
    alone = solve(m, [4], cfg)
    assert whole.context.dtype == torch.float64
    torch.testing.assert_close(whole.context[3], alone.context[0], rtol=1e-9, atol=1e-9)
    assert whole.iterations[3] == alone.iterations[0]
    rev = solve(m, [5, 4, 3, 2, 1], cfg)
    torch.testing.assert_close(rev.context.flip(0), whole.context, rtol=1e-9, atol=1e-9)


def _affine(rho: float, d: int = 6, n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    a = rho * q
    b = torch.randn(n, d, generator=g, dtype=torch.float64)
    x_star = torch.linalg.solve(torch.eye(d, dtype=torch.float64) - a, b.T).T

    def fn(z, rows):
        bb = b if rows is None else b[rows]
        return z @ a.T + bb

    return fn, x_star


@pytest.mark.parametrize("method", ["picard", "anderson", "broyden", "hybrid"])
def test_affine_known_answer(method):
    fn, x_star = _affine(0.9)
    cfg = SolverConfig(metric="l2", threshold=1e-10, max_iterations=1000, method=method)
    r = iterate(fn, torch.zeros_like(x_star), cfg)
    assert bool(r.converged.all())
    torch.testing.assert_close(r.context, x_star, rtol=0, atol=1e-8)


def test_anderson_needs_fewer_evaluations_on_a_slow_affine_map():
    fn, _ = _affine(0.97)
    p = iterate(
        fn,
        torch.zeros(4, 6, dtype=torch.float64),
        SolverConfig(metric="l2", threshold=1e-8, max_iterations=2000),
    )
    a = iterate(
        fn,
        torch.zeros(4, 6, dtype=torch.float64),
        SolverConfig(metric="l2", threshold=1e-8, max_iterations=2000, method="anderson"),
    )
    assert bool(a.converged.all()) and bool(p.converged.all())
    assert a.evaluations.max() * 3 <= p.evaluations.min()


@pytest.mark.parametrize("method", ["picard", "anderson", "broyden", "hybrid"])
def test_cos_fixed_point(method):
    cfg = SolverConfig(metric="l2", threshold=1e-12, max_iterations=500, method=method)
    r = iterate(lambda z, rows: torch.cos(z), torch.zeros(1, 1, dtype=torch.float64), cfg)
    assert r.converged.item()
    assert r.context.item() == pytest.approx(0.7390851332151607, abs=1e-10)


def test_expanding_map_is_never_converged_by_plain_iteration():
    cfg = SolverConfig(metric="mse", threshold=0.01, max_iterations=100)
    r = iterate(lambda z, rows: 2.0 * z + 1.0, torch.zeros(3, 4, dtype=torch.float64), cfg)
    assert not bool(r.converged.any())


def test_anderson_converges_only_to_a_true_fixed_point():
    # Anderson may find the repelling fixed point z = -1 of 2z + 1: legitimate, but it must be one.
    cfg = SolverConfig(metric="l2", threshold=1e-9, max_iterations=100, method="anderson")
    r = iterate(lambda z, rows: 2.0 * z + 1.0, torch.zeros(3, 4, dtype=torch.float64), cfg)
    ok = r.converged
    torch.testing.assert_close(r.context[ok], torch.full_like(r.context[ok], -1.0), rtol=0, atol=1e-8)


def test_rotation_with_unit_radius_never_converges():
    theta = 0.3
    rot = torch.tensor(
        [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype=torch.float64
    )
    cfg = SolverConfig(metric="l2", threshold=1e-3, max_iterations=300)
    r = iterate(lambda z, rows: z @ rot.T, torch.ones(2, 2, dtype=torch.float64), cfg)
    assert not bool(r.converged.any())


def test_seeds_untrained_layerwise_single_token_converges_under_l2():
    # seed 000's setting (eval, L2 < 0.01, warmup 100, 200 iterations), full-size model
    m = newllm.build_model(newllm.ModelConfig(arch="layerwise"))
    r = solve(m, [100], SolverConfig(metric="l2", threshold=0.01, warmup=100))
    assert r.rate == 1.0 and 100 < r.iterations.item() < 200
    assert r.context.norm().item() == pytest.approx(16.0, abs=0.01)


def test_summary_is_json_ready():
    import json

    r = solve(tiny_model(), [1, 2])
    json.dumps(r.summary(), allow_nan=False)


# --- Anderson vs Picard (contraction toolkit, issue 4) -----------------------------------------------


def _tanh_map(n: int = 5, d: int = 8, lip: float = 0.8, seed: int = 3):
    """Rows ``z -> lip * tanh(W z + b_i)`` with ``‖W‖₂ = 1``: contractions with Lipschitz constant <= lip."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, d, generator=g, dtype=torch.float64)
    w = w / torch.linalg.matrix_norm(w, ord=2)
    b = 2 * torch.randn(n, d, generator=g, dtype=torch.float64)

    def fn(z, rows):
        return lip * torch.tanh(z @ w.T + (b if rows is None else b[rows]))

    return fn, b


@pytest.mark.parametrize("lip", [0.5, 0.95])
def test_anderson_and_picard_agree_on_contractive_nonlinear_maps(lip):
    fn, b = _tanh_map(lip=lip)
    cfg = dict(metric="l2", threshold=1e-11, max_iterations=2000)
    p = iterate(fn, torch.zeros_like(b), SolverConfig(**cfg))
    a = iterate(fn, torch.zeros_like(b), SolverConfig(method="anderson", **cfg))
    assert bool(p.converged.all()) and bool(a.converged.all())
    # both within tol/(1-k) of the unique fixed point
    torch.testing.assert_close(a.context, p.context, rtol=0, atol=2 * 1e-11 / (1 - lip))
    assert torch.equal(a.evaluations, a.iterations)  # one evaluation of f per iteration
    assert int(a.evaluations.max()) <= int(p.evaluations.max())


# Not broyden: its secant steps -g/g' jump to |z| ~ 1e16, where z + 0.5 + 0.25 sin(z) rounds to z, a genuine
# fixed point of the float64 map (the premise "no fixed point" holds only in exact arithmetic).
@pytest.mark.parametrize("method", ["picard", "anderson", "hybrid"])
def test_a_map_without_fixed_point_is_never_converged(method):
    # g(z) = f(z) - z = 0.5 + 0.25 sin(z) >= 0.25 everywhere: no fixed point exists
    cfg = SolverConfig(metric="l2", threshold=0.2, max_iterations=300, method=method, stall_window=50)
    r = iterate(lambda z, rows: z + 0.5 + 0.25 * torch.sin(z), torch.zeros(4, 3, dtype=torch.float64), cfg)
    assert not bool(r.converged.any())
    assert bool((r.lowest_residual >= 0.25 * math.sqrt(3) - 1e-12).all())


@pytest.mark.parametrize("method", ["picard", "anderson", "broyden", "hybrid"])
def test_nonfinite_rows_are_diverged_under_both_methods(method):
    def fn(z, rows):
        out = 0.5 * z + 1.0
        bad = torch.tensor([0, 1, 0]).bool() if rows is None else torch.tensor([0, 1, 0]).bool()[rows]
        return torch.where(bad.unsqueeze(-1) & (z.abs().sum(-1, keepdim=True) > 0), math.nan, out)

    r = iterate(
        fn, torch.zeros(3, 2, dtype=torch.float64), SolverConfig(metric="l2", threshold=1e-9, method=method)
    )
    assert r.status.tolist() == [Status.CONVERGED, Status.NONFINITE, Status.CONVERGED]
    assert torch.isfinite(r.context).all()


def test_solver_registry_validates_the_method_and_takes_new_solvers(monkeypatch):
    from newllm import solvers

    with pytest.raises(ValueError, match="picard, anderson, broyden, hybrid, newton"):
        SolverConfig(method="newton_krylov")
    with pytest.raises(ValueError, match="unknown solver method 'newton_krylov'"):
        solvers.get("newton_krylov")

    def half(fn, book):  # Picard with damping 1/2, written against the RowBook protocol
        for k in range(1, book.cfg.max_iterations + 1):
            if book.active.numel() == 0:
                break
            rows, z, f = book.evaluate(fn)
            go = book.record(k, rows, z, f)
            book.z[rows[go]] = (0.5 * (z + f))[go]
            book.active = rows[go]

    monkeypatch.setitem(solvers.SOLVERS, "half", half)
    cfg = SolverConfig(method="half", metric="l2", threshold=1e-6, max_iterations=100)
    r = iterate(lambda z, rows: 0.5 * z + 1.0, torch.zeros(2, 3, dtype=torch.float64), cfg)
    assert r.converged.all() and torch.allclose(r.context, torch.full((2, 3), 2.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="new identifier"):
        solvers.register("picard", half)


def test_hybrid_switches_a_stalled_row_to_broyden_and_reaches_what_anderson_misses():
    # z -> 2z + 1 per row has one (repelling) fixed point z = -1. With a history of one and a tiny
    # regularisation Anderson solves an affine map in one secant step; with anderson_m=1 and a Picard
    # start that grows, Anderson restarts every step (plain iteration, diverging) and the row stalls;
    # the hybrid's Broyden then finds -1 (secant on an affine map: exact in a few steps).
    cfg = dict(metric="l2", threshold=1e-9, max_iterations=60, anderson_m=1, divergence_factor=None)
    a = iterate(lambda z, rows: 2.0 * z + 1.0, torch.ones(2, 3, dtype=torch.float64), SolverConfig(method="anderson", **cfg))
    h = iterate(
        lambda z, rows: 2.0 * z + 1.0,
        torch.ones(2, 3, dtype=torch.float64),
        SolverConfig(method="hybrid", hybrid_window=5, **cfg),
    )
    assert h.converged.all()
    torch.testing.assert_close(h.context, torch.full((2, 3), -1.0, dtype=torch.float64), rtol=0, atol=1e-8)
    assert int(h.evaluations.max()) <= 60 and not bool(a.converged.all())
