"""Gradients through the fixed point (newllm.implicit): against the dense implicit gradient, gradcheck,
the one-step and phantom approximations, fixed dropout masks, and a training step."""

from __future__ import annotations

import pytest
import torch

from newllm import SolverConfig
from newllm.implicit import attach, fixed_point
from newllm.solvers import iterate
from tests.helpers import tiny_model

F64 = torch.float64
TIGHT = SolverConfig(metric="rel", threshold=1e-13, max_iterations=400, method="broyden", divergence_factor=None)


def _model(seed: int = 1, **kw):
    return tiny_model(seed=seed, embed_dim=6, context_dim=6, hidden_dim=6, init_std=0.3, **kw).double().eval()


def _param_grad(model, ids, w, **kw) -> tuple[torch.Tensor, object]:
    model.zero_grad()
    fp = fixed_point(model, ids, TIGHT, **kw)
    (fp.context * w).sum().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]), fp


def test_implicit_gradient_equals_the_dense_implicit_gradient_and_one_step_does_not():
    m, ids = _model(), [1, 2, 3, 5]
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=F64)
    exact, _ = _param_grad(m, ids, w, backward="dense")
    implicit, fp = _param_grad(m, ids, w)
    one, _ = _param_grad(m, ids, w, gradient="one_step")
    assert fp.forward.converged.all() and fp.backward.solves[0].converged.all()
    assert float((implicit - exact).norm() / exact.norm()) < 1e-8
    assert float((one - exact).norm() / exact.norm()) > 0.1  # this map is far from J = 0


@pytest.mark.slow
def test_gradcheck_through_the_fixed_point():
    m = tiny_model(seed=2, embed_dim=4, context_dim=4, hidden_dim=4, init_std=0.3).double().eval()
    emb = m.embed([3, 7]).detach().clone().requires_grad_(True)

    def f(e):
        with torch.no_grad():
            z = iterate(lambda z, rows: m.step(e if rows is None else e[rows], z), torch.zeros(2, 4, dtype=F64), TIGHT)
        assert z.converged.all()
        return attach(lambda z: m.step(e, z), z.context)

    assert torch.autograd.gradcheck(f, (emb,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_phantom_approaches_the_implicit_gradient_on_a_contraction():
    m = tiny_model(seed=5, embed_dim=6, context_dim=6, hidden_dim=6, init_std=0.3).double().eval()  # sigma_max 0.7
    ids, w = [2, 4], torch.randn(2, 6, generator=torch.Generator().manual_seed(2), dtype=F64)
    exact, _ = _param_grad(m, ids, w, backward="dense")
    few, _ = _param_grad(m, ids, w, gradient="phantom", phantom_steps=1, phantom_damping=1.0)
    many, _ = _param_grad(m, ids, w, gradient="phantom", phantom_steps=40, phantom_damping=1.0)
    assert float((many - exact).norm()) < 0.1 * float((few - exact).norm())


def test_fixed_masks_give_implicit_gradients_in_train_mode_and_fresh_masks_are_refused():
    m = _model(dropout=0.3)
    cfg = SolverConfig(train_mode=True, dropout_mode="fixed", metric="rel", threshold=1e-13, max_iterations=400,
                       method="broyden", divergence_factor=None)
    w = torch.ones(3, 6, dtype=F64)
    grads = {}
    for bw in ("dense", None):
        m.zero_grad()
        fp = fixed_point(m, [1, 2, 3], cfg, backward=bw, generator=torch.Generator().manual_seed(5))
        (fp.context * w).sum().backward()
        grads[bw] = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
    assert float((grads[None] - grads["dense"]).norm() / grads["dense"].norm()) < 1e-8
    with pytest.raises(ValueError, match="deterministic"):
        fixed_point(m, [1], SolverConfig(train_mode=True))


def test_a_training_step_through_the_fixed_point_lowers_the_loss():
    m = tiny_model(seed=5, embed_dim=6, context_dim=6, hidden_dim=6, init_std=0.1).double().eval()
    target = torch.randn(3, 6, generator=torch.Generator().manual_seed(1), dtype=F64)
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        fp = fixed_point(m, [1, 2, 3], TIGHT)
        loss = (fp.context - target).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
