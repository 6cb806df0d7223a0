"""Train-mode arithmetic against its expectation (issue 16): inverted dropout (scaling 1/(1-p), the mask
rate, masks drawn from the generator) and the Hutchinson estimate of ``||J||_F^2 / D`` on a known J.

Statistical checks use enough draws that a 5-standard-error band is tight (the standard error is
computed in closed form for each); every draw comes from a seeded generator, so each check is
deterministic."""

from __future__ import annotations

import math

import pytest
import torch

from newllm.model import _dropout
from newllm.phase1.loops import hutchinson_jacobian


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_entries_scaled_by_one_over_one_minus_p_at_rate_one_minus_p(p):
    n = 200_000
    x = torch.full((n,), 3.0, dtype=torch.float64)
    out = _dropout(x, p, torch.Generator().manual_seed(1))
    kept = out != 0
    # every kept entry is x / (1 - p) exactly; every other one is 0
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 3.0 / (1.0 - p)), rtol=1e-15, atol=0)
    rate, se = kept.double().mean().item(), math.sqrt(p * (1 - p) / n)
    assert abs(rate - (1 - p)) < 5 * se, (rate, 1 - p, se)
    # inverted dropout is unbiased: E[out] = x
    assert abs(out.mean().item() - 3.0) < 5 * 3.0 * math.sqrt(p / ((1 - p) * n))


def test_dropout_masks_come_from_the_generator():
    x = torch.arange(1.0, 13.0).reshape(3, 4)
    out = _dropout(x, 0.4, torch.Generator().manual_seed(7))
    keep = torch.rand(x.shape, generator=torch.Generator().manual_seed(7)) >= 0.4
    torch.testing.assert_close(out, x * keep / 0.6, rtol=0, atol=0)
    assert torch.equal(out, _dropout(x, 0.4, torch.Generator().manual_seed(7)))
    assert not torch.equal(out, _dropout(x, 0.4, torch.Generator().manual_seed(8)))


def test_dropout_zero_is_the_identity_and_draws_nothing():
    g = torch.Generator().manual_seed(3)
    before = g.get_state()
    x = torch.randn(5, 6)
    assert _dropout(x, 0.0, g) is x
    assert torch.equal(g.get_state(), before)  # the generator stream is left to the next user


def test_model_step_applies_dropout_once_per_hidden_layer():
    """A 1-block, 1-layer model in train mode equals the eval-mode arithmetic with the hidden layer
    multiplied by the generator's inverted-dropout mask."""
    from tests.helpers import tiny_model

    m = tiny_model(structure=(1,), dropout=0.3).train()
    e, c = m.embed([5, 6]), torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    blk = m.blocks[0]
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        h = torch.relu(blk.layers[0](torch.cat([e, c], -1)))
        h = h * (torch.rand(h.shape, generator=torch.Generator().manual_seed(11)) >= 0.3) / 0.7
        f, i, d = blk.gates(h).chunk(3, dim=-1)
        expect = blk.norm(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(d))
        torch.testing.assert_close(m.step(e, c, generator=g), expect, rtol=1e-6, atol=1e-6)


def _linear(a: torch.Tensor, n: int):
    """``new = c Aᵀ`` for ``n`` rows: every row's Jacobian is A."""
    c = torch.zeros(n, a.shape[1], dtype=torch.float64, requires_grad=True)
    return c @ a.T, c


def test_hutchinson_is_exact_per_probe_and_unbiased_for_a_known_jacobian():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    d, n = 6, 40_000
    new, c = _linear(a, n)
    est = hutchinson_jacobian(new, c, torch.Generator().manual_seed(5))
    assert est.shape == (n,)
    # per row: ||v^T A||^2 / D with v the generator's Gaussian probe
    v = torch.randn(n, d, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(est, (v @ a).pow(2).sum(-1) / d, rtol=1e-12, atol=0)
    # unbiased: E = ||A||_F^2 / D; Var(v^T A A^T v) = 2 ||A A^T||_F^2 for Gaussian v
    want = float(a.pow(2).sum()) / d
    se = math.sqrt(2 * float((a @ a.T).pow(2).sum()) / n) / d
    assert abs(float(est.mean()) - want) < 5 * se, (float(est.mean()), want, se)


def test_hutchinson_is_differentiable():
    # d/dA of ||v^T A||^2 / D is 2 v (v^T A) / D: the penalty's gradient reaches the weights
    a = torch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=torch.float64, requires_grad=True)
    c = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    est = hutchinson_jacobian(c @ a.T, c, torch.Generator().manual_seed(2))
    est.sum().backward()
    v = torch.randn(1, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(a.grad, 2 * v.T @ (v @ a.detach()) / 2, rtol=1e-12, atol=0)
