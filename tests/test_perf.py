import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from newllm import SolverConfig, iterate
from newllm.solvers.rows import rows_finite as _rows_finite
from newllm.tools.perf import (
    MatmulChain,
    iteration_counts,
    nearest_rank,
    step_flops,
    step_matmul_shapes,
    timed,
)
from tests.helpers import tiny_config, tiny_model


@pytest.mark.parametrize("structure", [(1,), (2,), (1, 1), (2, 2), (1, 3, 1)])
def test_step_flops_match_torch_flop_counter(structure):
    m = tiny_model(structure=structure).eval()
    e = m.embed([1, 2, 3, 4, 5])
    c = m.initial_context((5,))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        m.step(e, c)
    assert counter.get_total_flops() == 5 * step_flops(m.config)


def test_step_shapes_by_hand():
    cfg = tiny_config(structure=(2, 1), embed_dim=3, context_dim=5, hidden_dim=7)
    assert step_matmul_shapes(cfg) == [(8, 7), (7, 7), (7, 15), (8, 7), (7, 15)]
    assert step_flops(cfg) == 2 * (56 + 49 + 105 + 56 + 105)


def test_default_layerwise_step_is_1_31_mflop():
    from newllm import ModelConfig

    # per block (E+C)H + H*3C = 512*256 + 256*768; two blocks; x2 for multiply-add
    assert step_flops(ModelConfig(arch="layerwise")) == 2 * 2 * (512 * 256 + 256 * 768) == 1_310_720


def test_matmul_chain_has_the_step_shapes_and_runs():
    cfg = tiny_config(structure=(2, 2))
    chain = MatmulChain(cfg, 6, generator=torch.Generator().manual_seed(0))
    assert [(x.shape[1], w.shape[1]) for x, w, _ in chain.ops] == step_matmul_shapes(cfg)
    assert all(x.shape[0] == 6 for x, _, _ in chain.ops)
    assert chain.flops == 6 * step_flops(cfg)
    assert chain.seconds(repeat=2) > 0
    x, w, out = chain.ops[0]
    chain()
    torch.testing.assert_close(out, x @ w)
    with pytest.raises(ValueError, match="rows"):
        MatmulChain(cfg, 0)
    with pytest.raises(ValueError, match="repeat"):
        chain.seconds(repeat=0)


def test_timed_returns_the_value_and_a_duration():
    seconds, value = timed(lambda: 41 + 1, "cpu")
    assert value == 42 and seconds >= 0


def test_nearest_rank():
    vals = [float(v) for v in range(1, 11)]
    assert nearest_rank(vals, 0.9) == 9.0
    assert nearest_rank(vals, 1.0) == 10.0
    assert nearest_rank([5.0, 1.0, 3.0], 0.5) == 3.0
    assert nearest_rank([7.0], 0.9) == 7.0
    with pytest.raises(ValueError, match="q must be"):
        nearest_rank(vals, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        nearest_rank([], 0.5)


def test_iteration_counts_of_a_known_solve():
    # l2 residual of row z0 at iteration k is z0 / 2**k: below 0.01 at k = 7 (z0 = 1), 8 (1.5), later for 3 and 6
    z0 = torch.tensor([[1.0], [1.5], [3.0], [6.0]], dtype=torch.float64)
    cfg = SolverConfig(metric="l2", threshold=0.01, max_iterations=8, divergence_factor=None)
    res = iterate(lambda z, rows: z * 0.5, z0, cfg)
    its = res.iterations.tolist()
    assert its == [7, 8, 8, 8]
    c = iteration_counts(res)
    assert c["tokens"] == 4
    assert c["median_iterations"] == 8.0 and c["p90_iterations"] == 8.0 and c["max_iterations"] == 8.0
    assert c["mean_iterations"] == pytest.approx(31 / 4)
    assert c["mean_evaluations"] == pytest.approx(31 / 4)
    assert c["rate"] == pytest.approx(2 / 4) and c["diverged"] == 0.0


def test_rows_finite_is_exact():
    f = torch.tensor([[1.0, 2.0], [3e38, -3e38], [math.nan, 0.0], [math.inf, 0.0]])
    z = torch.tensor([[0.0, 0.0], [-3e38, 3e38], [0.0, 0.0], [0.0, 0.0]])
    r_l2 = torch.linalg.vector_norm(f - z, dim=-1)  # row 1 overflows to inf with finite f
    assert not bool(torch.isfinite(r_l2[1]))
    assert _rows_finite(f, r_l2).tolist() == [True, True, False, False]
    assert _rows_finite(f[:1], r_l2[:1]).tolist() == [True]


def reference_step(m, e, c):
    """model.step written out of place, as before the in-place ReLU and gate sum."""
    for block in m.blocks:
        h = torch.cat([e, c], dim=-1)
        for layer in block.layers:
            h = torch.relu(layer(h))
        forget, inp, delta = block.gates(h).chunk(3, dim=-1)
        c = block.norm(torch.sigmoid(forget) * c + torch.sigmoid(inp) * torch.tanh(delta))
    return c


@pytest.mark.parametrize("structure", [(1,), (2,), (2, 2), (1, 3, 1)])
def test_step_equals_the_out_of_place_reference_bitwise_with_gradients(structure):
    m = tiny_model(structure=structure, dropout=0.0).train()
    e = m.embed([3, 9, 17]).detach()
    c = torch.randn(3, 8, generator=torch.Generator().manual_seed(2), requires_grad=True)
    out = m.step(e, c)
    ref = reference_step(m, e, c)
    assert torch.equal(out, ref)
    g_out = torch.autograd.grad(out.square().sum(), [c, *m.parameters()], allow_unused=True)
    g_ref = torch.autograd.grad(ref.square().sum(), [c, *m.parameters()], allow_unused=True)
    for a, b in zip(g_out, g_ref, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("damping", [1.0, 0.5])
def test_solver_contexts_equal_a_per_row_loop_bitwise(damping):
    """Rows stop at different iterations, so every bookkeeping path (all rows, a subset, stops) runs."""
    a = torch.tensor([0.5, 0.9, 0.99, 0.2], dtype=torch.float64).unsqueeze(1)
    z0 = torch.tensor([[1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)

    def fn(z, rows):
        return (a if rows is None else a[rows]) * z + 0.1

    cfg = SolverConfig(
        metric="l2", threshold=1e-3, max_iterations=60, damping=damping, divergence_factor=None
    )
    res = iterate(fn, z0, cfg)
    for i in range(4):
        z, steps = z0[i : i + 1].clone(), 0
        while steps < cfg.max_iterations:
            steps += 1
            f = a[i : i + 1] * z + 0.1
            if float((f - z).abs().max()) < cfg.threshold:
                z = f
                break
            z = z + damping * (f - z) if damping != 1.0 else f
        assert res.iterations[i] == steps
        assert torch.equal(res.context[i : i + 1], z), i
    assert len(set(res.iterations.tolist())) > 2
