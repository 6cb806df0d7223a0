import math

import pytest
import torch

from newllm import metrics as M


def test_registry_has_the_four_named_metrics():
    assert list(M.METRICS) == ["mse", "l2", "rms", "rel"]
    with pytest.raises(ValueError, match="unknown metric 'delta'"):
        M.get("delta")


def test_known_values():
    new = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    old = torch.zeros(1, 4)
    assert M.mse(new, old).item() == pytest.approx(25 / 4)
    assert M.l2(new, old).item() == pytest.approx(5.0)
    assert M.rms(new, old).item() == pytest.approx(2.5)
    assert M.rel(new, old).item() == pytest.approx(1.0)
    assert M.rel(new, new).item() == 0.0


def test_identities_per_token():
    g = torch.Generator().manual_seed(0)
    new, old = (
        torch.randn(5, 7, 256, generator=g, dtype=torch.float64),
        torch.randn(5, 7, 256, generator=g, dtype=torch.float64),
    )
    r = M.all_residuals(new, old)
    assert r["mse"].shape == (5, 7)
    torch.testing.assert_close(r["l2"] ** 2, 256 * r["mse"])
    torch.testing.assert_close(r["rms"], r["mse"].sqrt())


def test_the_seed_bug_in_numbers():
    # seed 002: for D = 256 an L2 threshold of 0.01 equals an MSE threshold of 0.01**2/256 -- about 256x... stricter
    assert M.convert_threshold(0.01, "mse", "l2", 256) == pytest.approx(1.6)
    assert M.convert_threshold(0.01, "l2", "mse", 256) == pytest.approx(0.01**2 / 256)
    assert M.convert_threshold(0.01, "mse", "rms", 256) == pytest.approx(0.1)


@pytest.mark.parametrize("src", ["mse", "l2", "rms", "rel"])
@pytest.mark.parametrize("dst", ["mse", "l2", "rms", "rel"])
def test_threshold_round_trip(src, dst):
    t = 0.0123
    there = M.convert_threshold(t, src, dst, 64, reference_norm=8.0)
    back = M.convert_threshold(there, dst, src, 64, reference_norm=8.0)
    assert back == pytest.approx(t, rel=1e-12)


def test_rel_needs_a_reference_norm():
    with pytest.raises(ValueError, match="reference_norm"):
        M.convert_threshold(0.1, "rel", "mse", 16)
    assert M.convert_threshold(0.1, "rel", "rel", 16) == 0.1


def test_decision_is_strict_and_nan_never_converges():
    r = torch.tensor([0.5, 1.0, math.nan, math.inf])
    assert M.below(r, 1.0).tolist() == [True, False, False, False]


def test_residuals_are_per_token_not_batch_reduced():
    new = torch.zeros(3, 4)
    old = torch.zeros(3, 4)
    old[1] = 10.0
    assert M.below(M.residual("mse", new, old), 0.01).tolist() == [True, False, True]


@pytest.mark.parametrize("dim", [1, 3, 8, 256])
def test_all_residuals_equal_each_metric_bitwise(dim):
    g = torch.Generator().manual_seed(dim)
    new = torch.randn(7, dim, generator=g)
    old = torch.randn(7, dim, generator=g)
    new[0, 0], new[1, 0], old[2, 0] = math.nan, math.inf, -math.inf
    new[3] = old[3]  # zero change
    got = M.all_residuals(new, old)
    assert list(got) == list(M.METRICS)
    for name, fn in M.METRICS.items():
        want = fn(new, old)
        assert torch.equal(got[name].isnan(), want.isnan()), name
        assert torch.equal(got[name].nan_to_num(0.0), want.nan_to_num(0.0)), name


def test_all_residuals_uses_a_replaced_registry_entry(monkeypatch):
    monkeypatch.setitem(M.METRICS, "mse", lambda new, old: (new - old).abs().amax(-1))
    new, old = torch.tensor([[1.0, 4.0]]), torch.zeros(1, 2)
    assert M.all_residuals(new, old)["mse"].tolist() == [4.0]
