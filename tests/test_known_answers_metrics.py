"""Metrics against closed-form answers (issue 16): each residual on a non-square batch (the reduction is
over the last dim), every metric through ``all_residuals``, and ``convert_threshold``'s edges."""

from __future__ import annotations

import math

import pytest
import torch

from newllm import metrics as M


def _pair():
    """``new, old`` of shape [2, 3, 4] (no two dims equal), change d = 2 in one entry per row."""
    old = torch.zeros(2, 3, 4, dtype=torch.float64)
    new = old.clone()
    new[..., 0] = 3.0  # ||new|| = 3 per row
    new[..., 1] = 2.0  # change d = (3, 2, 0, 0) ... from old = 0; ||d|| = sqrt(13)
    old[..., 0] = 3.0  # so d = (0, 2, 0, 0): ||d|| = 2, mse = 4/4 = 1
    return new, old


@pytest.mark.parametrize(
    "name, value", [("mse", 1.0), ("l2", 2.0), ("rms", 1.0), ("rel", 2.0 / math.sqrt(13.0))]
)
def test_each_metric_reduces_the_last_dim_to_its_closed_form(name, value):
    new, old = _pair()
    for out in (M.residual(name, new, old), M.all_residuals(new, old)[name]):
        assert out.shape == (2, 3)
        torch.testing.assert_close(out, torch.full((2, 3), value, dtype=torch.float64), rtol=1e-15, atol=0)


def test_unknown_metric_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown metric 'cos'; expected one of mse, l2, rms, rel$"):
        M.get("cos")


def test_convert_threshold_known_values_and_identity():
    assert M.convert_threshold(0.0, "mse", "l2", 4) == 0.0  # 0 is a valid threshold
    assert M.convert_threshold(1e-4, "mse", "l2", 4) == pytest.approx(0.02, rel=1e-15)
    # same metric: returned as given, and 'rel' -> 'rel' needs no reference norm
    assert M.convert_threshold(0.1, "rel", "rel", 4) == 0.1
    assert M.convert_threshold(0.3, "mse", "mse", 3) == 0.3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(value=1e-3, dim=0), "dim must be a positive integer, got 0"),
        (dict(value=1e-3, dim=2.0), "dim must be a positive integer, got 2.0"),
        (dict(value=math.inf, dim=4), "threshold must be finite and >= 0, got inf"),
        (dict(value=-1e-3, dim=4), r"threshold must be finite and >= 0, got -0.001"),
    ],
)
def test_convert_threshold_rejects_bad_values_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        M.convert_threshold(src="mse", dst="l2", **kwargs)


def test_convert_to_rel_needs_the_reference_norm():
    with pytest.raises(ValueError, match=r"^converting to or from 'rel' needs reference_norm \(\|\|f\(c\)\|\|, about sqrt\(dim\)\)$"):
        M.convert_threshold(1e-3, "mse", "rel", 4)
