"""The Phase 1 group loop against known answers (issue 16): with a zero learning rate it is the solver's
Picard iteration (same stop rule, same counts, same final loss), the loss is the mean over the group (a
group of copies of one token steps exactly like the token alone), and gradient clipping bounds the step
to ``lr * clip``."""

from __future__ import annotations

import pytest
import torch

from newllm import SolverConfig, solve
from newllm.phase1.config import Phase1Config
from newllm.phase1.loops import train_group
from tests.helpers import tiny_model

TOKENS = torch.tensor([1, 5, 9, 12])


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize(
    "threshold, warmup, iterations",
    [(1e-3, 3, [4, 4, 4, 4]), (1e-3, 0, [2, 2, 2, 2]), (1e-5, 0, [40, 40, 32, 40])],  # the solver's counts
)
def test_with_a_zero_learning_rate_the_loop_is_the_solver(threshold, warmup, iterations):
    model = tiny_model(seed=3).eval()
    cfg = Phase1Config(threshold=threshold, warmup=warmup, max_iterations=40, grad_clip=None)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    out = train_group(model, opt, TOKENS, cfg, torch.Generator().manual_seed(0))
    ref = solve(model, TOKENS, SolverConfig(metric="mse", threshold=threshold, warmup=warmup, max_iterations=40,
                                            divergence_factor=None))
    assert ref.iterations.tolist() == iterations
    assert out.converged.tolist() == ref.converged.tolist() and bool(out.converged.any())
    assert out.iterations.tolist() == ref.iterations.tolist()
    assert out.optimizer_steps == int(ref.iterations.max())  # one step per iteration until the last stops
    torch.testing.assert_close(out.final_loss, ref.residual["mse"].double(), rtol=1e-5, atol=1e-12)


def test_the_loss_is_the_mean_over_the_group():
    # the mean over 3 copies of a token has the gradient of the token alone: identical SGD steps
    cfg = Phase1Config(threshold=1e-12, max_iterations=3, grad_clip=None)
    one, three = tiny_model(seed=1), tiny_model(seed=1)
    for model, ids in ((one, torch.tensor([7])), (three, torch.tensor([7, 7, 7]))):
        model.eval()
        out = train_group(model, torch.optim.SGD(model.parameters(), lr=0.05), ids, cfg,
                          torch.Generator().manual_seed(0))
        assert out.optimizer_steps == 3 and not bool(out.converged.any())
    moved = float(torch.linalg.vector_norm(_flat(one) - _flat(tiny_model(seed=1))))
    apart = float(torch.linalg.vector_norm(_flat(one) - _flat(three)))
    assert moved > 1e-3 and apart < 1e-4 * moved, (moved, apart)  # float32 rounding only; a sum would be 2x off


def test_gradient_clipping_bounds_the_step_to_lr_times_clip():
    lr, clip = 0.1, 1e-4
    model = tiny_model(seed=2).eval()
    before = _flat(model)
    cfg = Phase1Config(threshold=1e-12, max_iterations=1, grad_clip=clip)
    train_group(model, torch.optim.SGD(model.parameters(), lr=lr), TOKENS, cfg, torch.Generator().manual_seed(0))
    # plain SGD moves by lr * the clipped gradient, whose norm is clip (the raw one is far larger)
    step = float(torch.linalg.vector_norm(_flat(model) - before))
    assert abs(step - lr * clip) < 1e-3 * lr * clip, step
