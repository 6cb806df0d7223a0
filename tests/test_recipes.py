"""The recipes of issue 18: each loss term and constraint on known answers, the input-injection map,
the measurements, the goals and the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from newllm.cli import train_cmd
from newllm.cli.main import main
from newllm.config import ModelConfig
from newllm.matrix import BENCHMARK_RECIPES, RECIPES
from newllm.model import build_model
from newllm.phase1 import Phase1Config, recipe_loss, train_phase1
from newllm.phase1.penalties import (
    context_weights,
    covariance_loss,
    project_spectral,
    sigma_estimate,
    sigma_hinge,
    variance_loss,
)
from newllm.recipes import InjectedModel, Plain, carry_vs_reset, probe_accuracy, solve_sequences
from newllm.recipes.inject import shift
from newllm.recipes.judge import GOAL1, judge
from newllm.recipes.measure import FIXED, Solved

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelConfig(arch="layerwise", vocab_size=64, embed_dim=8, context_dim=8, hidden_dim=8)


def _linear(a: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``new = A_i c_i`` for ``a [n, D, D]``: a map with known singular values (c_in requires grad)."""
    c_in = c.clone().requires_grad_(True)
    return torch.einsum("nij,nj->ni", a, c_in), c_in


def _diag(*sigmas: float) -> torch.Tensor:
    return torch.diag(torch.tensor(sigmas, dtype=torch.float64))


def test_sigma_estimate_matches_the_exact_spectral_norm():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 6, 6, generator=gen, dtype=torch.float64)
    new, c_in = _linear(a, torch.randn(5, 6, dtype=torch.float64))
    est = sigma_estimate(new, c_in, torch.Generator().manual_seed(1), iterations=60)
    exact = torch.linalg.matrix_norm(a, ord=2)
    assert torch.allclose(est, exact, rtol=1e-3)


def test_sigma_hinge_is_zero_below_the_margin_and_squared_above():
    a = torch.stack([_diag(0.5, 0.3, 0.1), _diag(2.0, 0.5, 0.1), _diag(0.95, 0.2, 0.1)])
    new, c_in = _linear(a, torch.ones(3, 3, dtype=torch.float64))
    hinge = sigma_hinge(new, c_in, torch.Generator().manual_seed(0), margin=0.9, iterations=30)
    assert hinge[0] == 0.0
    assert hinge[1] == pytest.approx((2.0 - 0.9) ** 2, rel=1e-4)
    assert hinge[2] == pytest.approx((0.95 - 0.9) ** 2, rel=1e-3)


def test_sigma_hinge_trains_the_weights_only_above_the_margin():
    for scale, grad_expected in ((0.5, False), (2.0, True)):
        a = (_diag(scale, 0.1) * 1.0).unsqueeze(0).requires_grad_(True)
        c_in = torch.ones(1, 2, dtype=torch.float64, requires_grad=True)
        new = torch.einsum("nij,nj->ni", a, c_in)
        sigma_hinge(new, c_in, torch.Generator().manual_seed(0), 0.9, 10).sum().backward()
        assert bool(a.grad.abs().sum() > 0) is grad_expected
        if grad_expected:  # descending the hinge lowers the top singular value
            assert a.grad[0, 0, 0] > 0


def test_variance_loss_known_answers():
    same = torch.ones(10, 4)
    assert variance_loss(same) == pytest.approx(1.0 - 1e-2, abs=1e-6)  # std 0: 1 - sqrt(1e-4)
    spread = torch.tensor([[3.0, -3.0], [-3.0, 3.0], [3.0, 3.0], [-3.0, -3.0]])  # std > 1 in both dims
    assert variance_loss(spread) == 0.0
    assert variance_loss(torch.ones(1, 4)) == 0.0


def test_covariance_loss_known_answers():
    uncorrelated = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert covariance_loss(uncorrelated) == pytest.approx(0.0, abs=1e-12)
    correlated = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # cov [[2, 2], [2, 2]]: off-diagonal² = 8, / C = 4
    assert covariance_loss(correlated) == pytest.approx(4.0)


def test_project_spectral_caps_the_weights_acting_on_c():
    model = build_model(TINY, seed=0)
    with torch.no_grad():
        for layer, _ in context_weights(model):
            layer.weight.mul_(200.0)
    before = [layer.weight.detach().clone() for layer, _ in context_weights(model)]
    project_spectral(model, 0.7)
    for (layer, start), old in zip(context_weights(model), before, strict=True):
        w = layer.weight.detach()
        assert float(torch.linalg.matrix_norm(w[:, start:].double(), ord=2)) == pytest.approx(0.7, rel=1e-5)
        assert torch.equal(w[:, :start], old[:, :start])  # the embedding's columns are not touched
    kept = [layer.weight.detach().clone() for layer, _ in context_weights(model)]
    project_spectral(model, 5.0)  # already below: unchanged
    assert all(
        torch.equal(a, layer.weight) for a, (layer, _) in zip(kept, context_weights(model), strict=True)
    )


def test_spectral_recipe_keeps_the_cap_through_training():
    model = build_model(TINY, seed=0)
    cfg = Phase1Config(epochs=2, learning_rate=0.05, max_iterations=5, spectral_scale=0.5, loop="batched")
    train_phase1(model, [[1, 2, 3, 4]], cfg, progress=False)
    for layer, start in context_weights(model):
        assert float(torch.linalg.matrix_norm(layer.weight.detach()[:, start:].double(), ord=2)) <= 0.5 + 1e-5


def test_recipe_loss_is_zero_and_draws_nothing_without_terms():
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    new = torch.randn(4, 3, requires_grad=True)
    assert float(recipe_loss(Phase1Config(), new, new, gen)) == 0.0
    assert torch.equal(gen.get_state(), state)  # the seeds' recipes keep their random stream


def test_recipe_loss_adds_each_weighted_term():
    new = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    cfg = Phase1Config(variance_weight=2.0, covariance_weight=0.5)
    expect = 2.0 * variance_loss(new) + 0.5 * covariance_loss(new)
    assert float(recipe_loss(cfg, new, new, torch.Generator())) == pytest.approx(float(expect))


def test_every_benchmark_recipe_is_a_valid_config_and_documented():
    doc = (ROOT / "docs" / "recipes.md").read_text()
    for name in BENCHMARK_RECIPES:
        assert RECIPES[name].phase1(loop="batched", seed=0).epochs >= 1
        assert f"`{name}`" in doc, name
    assert RECIPES["seeds"].settings == RECIPES["001"].settings


def test_injection_inputs_and_shift():
    model = InjectedModel(build_model(TINY, seed=0)).eval()
    with torch.no_grad():
        model.history.weight.copy_(torch.eye(8))
    ids, prev = torch.tensor([1, 2]), torch.randn(2, 8)
    assert torch.allclose(model.inputs(ids, prev), model.base.embed(ids) + prev)
    c = torch.arange(6.0).reshape(1, 3, 2)
    assert torch.equal(shift(c), torch.tensor([[[0.0, 0.0], [0.0, 1.0], [2.0, 3.0]]]))


def test_injection_carries_history_only_through_its_input():
    base = build_model(TINY, seed=0).eval()
    model = InjectedModel(base).eval()
    samples = [[3, 5, 7, 5]]
    for carry in (False, True):  # H = 0: exactly the plain model's contexts in both modes
        plain = solve_sequences(Plain(base), samples, FIXED, carry=carry).contexts
        assert torch.allclose(solve_sequences(model, samples, FIXED, carry=carry).contexts, plain)
    with torch.no_grad():
        model.history.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
    hist = solve_sequences(model, samples, FIXED, carry=True).contexts
    assert torch.allclose(hist[0], plain[0])  # position 0 has no history
    assert bool(((hist[1:] - plain[1:]).norm(dim=-1) > 1e-2).all())  # later positions read it
    reset = solve_sequences(model, samples, FIXED, carry=False).contexts  # reset: zero history input
    assert torch.allclose(reset, solve_sequences(Plain(base), samples, FIXED, carry=False).contexts)


def test_carry_vs_reset_bound():
    ctx = torch.zeros(2, 3)
    r = Solved(
        ctx, torch.ones(2, dtype=torch.bool), torch.ones(2), torch.tensor([0.1, 0.1], dtype=torch.float64)
    )
    c = Solved(ctx + torch.tensor([[0.3, 0, 0], [0.9, 0, 0]]), r.converged, r.iterations, r.residual)
    out = carry_vs_reset(r, c, 0.75)  # bound (0.1 + 0.1) / (1 - 0.75) = 0.8
    assert out["bound_max"] == pytest.approx(0.8)
    assert out["within_bound"] == 0.5 and out["distance_max"] == pytest.approx(0.9)
    assert carry_vs_reset(r, c, 1.2)["bound_max"] == float("inf")


def test_probe_accuracy_known_answers():
    x = torch.eye(6) * 3.0
    assert probe_accuracy(x, torch.arange(6)) == 1.0
    same = torch.ones(4, 3)  # identical contexts for two tokens: at best one of each pair
    assert probe_accuracy(same, torch.tensor([0, 1, 0, 1])) == 0.5


def _measure(**over):
    m = {
        "converged_reset": 1.0,
        "converged_carry": 0.97,
        "sigma_max_exact_max": 0.8,
        "sigma_max_estimate_max": 0.7,
        "effective_rank_fraction": 0.6,
        "tokens": 20,
        "max_cosine": 0.5,
        "probe_accuracy": 1.0,
        "phase2": {m: {"ppl": 10.0, "bigram_ppl": 10.0} for m in ("reset", "carry")},
    }
    return {**m, **over}


def test_judge_goal_one_needs_every_criterion_on_every_seed():
    assert judge([_measure()], dim=8)["goal1_met"]
    for bad in (
        {"converged_carry": 0.9},
        {"sigma_max_estimate_max": 1.01},
        {"effective_rank_fraction": 0.4},
        {"tokens": 15},
        {"max_cosine": 0.95},
        {"probe_accuracy": 0.98},
    ):
        out = judge([_measure(), _measure(**bad)], dim=8)
        assert not out["goal1_met"] and out["met_count"] == len(GOAL1) - 1, bad
    g = judge([_measure()], dim=8)
    assert g["reset_vs_bigram"]["met"] and not g["carry_vs_bigram"]["met"]  # equal to bigram: not a win


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    train_cmd.add_arguments(p)
    args = p.parse_args(argv)
    args._argv = argv
    return args


def test_train_recipe_sets_the_phase1_config_and_flags_override_it():
    cfg = train_cmd.phase1_config(_args(["--recipe", "spectral+vc", "--tokens", "3", "--out", "x"]))
    assert cfg.spectral_scale == 0.9 and cfg.variance_weight == 1.0 and cfg.epochs == 20
    cfg = train_cmd.phase1_config(
        _args(["--recipe", "spectral+vc", "--epochs", "2", "--tokens", "3", "--out", "x"])
    )
    assert cfg.epochs == 2 and cfg.spectral_scale == 0.9
    assert train_cmd.phase1_config(_args(["--tokens", "3", "--out", "x"])) == Phase1Config(loop="spec")


def test_train_bad_recipe_is_one_error_line(capsys):
    assert main(["train", "--recipe", "nope", "--tokens", "3", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert "'nope'" in err[0] and "sigma-hinge" in err[0] and "spectral" in err[0]


def test_train_inject_recipe_is_refused(capsys, tmp_path):
    argv = ["train", "--recipe", "inject+sigma-hinge+vc", "--tokens", "3", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "newllm recipes" in capsys.readouterr().err


def test_list_recipes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--list-recipes"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BENCHMARK_RECIPES)
    assert "untrained" not in out


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--recipes", "seeds,bogus"], "'bogus'"), (["--archs", "circular"], "'circular'"), (["--full-dim", "0"], "0")],
)
def test_recipes_command_bad_input_is_one_error_line(capsys, tmp_path, argv, named):
    assert main(["recipes", "--quick", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and named in err[0]
    assert not any(tmp_path.iterdir())  # refused before any work
