"""Collapse diagnostics against closed-form answers (issue 16): effective rank of matrices with a spectrum
we construct, cosines of hand-picked rows, the report's de-duplication and thinning, and the collapse flag
for one degenerate member among healthy ones (and for none)."""

from __future__ import annotations

import math

import pytest
import torch

from newllm import diagnostics as D


def _with_spectrum(s: list[float], n: int, c: int, seed: int = 0) -> torch.Tensor:
    """An ``[n, c]`` matrix ``U diag(s) Vᵀ`` with random orthonormal U, V: its singular values are ``s``."""
    g = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(n, len(s), generator=g, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(c, len(s), generator=g, dtype=torch.float64))[0]
    return u @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ v.T


@pytest.mark.parametrize("s", [[3.0, 1.0], [5.0, 2.0, 2.0, 1.0], [1.0, 1.0, 1.0], [7.0]])
def test_effective_rank_is_exp_entropy_of_the_normalised_spectrum(s):
    p = torch.tensor(s, dtype=torch.float64) / sum(s)
    want = math.exp(-float((p * p.log()).sum()))
    x = _with_spectrum(s, 9, 6)
    assert D.effective_rank(x) == pytest.approx(want, rel=1e-10)
    # the leading dims are flattened into rows: [3, 3, 6] is the same 9 contexts
    assert D.effective_rank(x.reshape(3, 3, 6)) == pytest.approx(want, rel=1e-10)


def test_effective_rank_of_k_equal_directions_is_k():
    for k in (1, 2, 5):
        assert D.effective_rank(_with_spectrum([2.5] * k, 8, 7, seed=k)) == pytest.approx(k, rel=1e-10)


def test_pairwise_cosine_lists_the_upper_triangle_in_order():
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    r = 1 / math.sqrt(2)
    torch.testing.assert_close(D.pairwise_cosine(x), torch.tensor([r, 0.0, -r], dtype=torch.float64))
    assert D.pairwise_cosine(x[:1]).numel() == 0
    # a zero row has cosine 0 with everything (no NaN)
    torch.testing.assert_close(D.pairwise_cosine(torch.tensor([[0.0, 0.0], [1.0, 0.0]])),
                               torch.zeros(1, dtype=torch.float64))


def test_distinctness_known_values():
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    r = 1 / math.sqrt(2)
    d = D.distinctness(x)
    assert d["max_cosine"] == pytest.approx(r) and d["mean_cosine"] == pytest.approx(0.0, abs=1e-15)
    assert d["min_cosine_distance"] == pytest.approx(1 - r) and d["mean_cosine_distance"] == pytest.approx(1.0)
    # tokens 0 and 1 share an id: only the pairs (0, 2), (1, 2) count
    d = D.distinctness(x, torch.tensor([4, 4, 9]))
    assert d["max_cosine"] == pytest.approx(0.0, abs=1e-15) and d["mean_cosine"] == pytest.approx(-r / 2)
    # all pairs share an id: nothing to compare
    assert all(math.isnan(v) for v in D.distinctness(x, torch.tensor([1, 1, 1])).values())


def test_collapse_report_keeps_the_first_occurrence_of_each_token():
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [-2.0, 0.0]])
    rep = D.collapse_report(x, torch.tensor([5, 3, 5, 3]))  # keeps rows 0 (id 5) and 1 (id 3)
    assert rep["context_rms"] == pytest.approx((math.sqrt(2) + math.sqrt(0.5)) / 2)
    assert rep["context_rms_min"] == pytest.approx(math.sqrt(0.5))
    assert rep["context_norm"] == pytest.approx(1.5)
    assert rep["effective_rank"] == pytest.approx(math.exp(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))))
    assert rep["max_cosine"] == pytest.approx(0.0, abs=1e-15)


def test_collapse_report_thins_to_evenly_spaced_rows():
    # 5 rows thinned to 3: rows 0, 2, 4 (linspace(0, 4, 3)); row norms 1..5 -> kept norms 1, 3, 5
    x = torch.diag(torch.arange(1.0, 6.0))
    rep = D.collapse_report(x, max_tokens=3)
    assert rep["context_norm"] == pytest.approx(3.0)
    assert rep["context_rms_min"] == pytest.approx(1 / math.sqrt(5))
    assert D.collapse_report(x, max_tokens=None)["context_norm"] == pytest.approx(3.0)
    assert D.collapse_report(x, max_tokens=5)["context_rms_min"] == pytest.approx(1 / math.sqrt(5))
    # de-duplication first (ids 1, 8, 1, 9, 2: rows 0, 1, 3, 4 remain, norms 1, 2, 4, 5), then thinning to
    # linspace(0, 3, 3).round() = 0, 2, 3 (1.5 rounds to even): norms 1, 4, 5
    rep = D.collapse_report(x, torch.tensor([1, 8, 1, 9, 2]), max_tokens=3)
    assert rep["context_norm"] == pytest.approx(10 / 3)


def test_one_degenerate_member_among_healthy_ones_is_a_collapse():
    healthy = torch.eye(6, 8) * math.sqrt(8)  # rms 1, orthogonal
    assert not D.is_collapsed(D.collapse_report(healthy))
    one_dead = healthy.clone()
    one_dead[3] = 0.0
    rep = D.collapse_report(one_dead)
    assert rep["context_rms_min"] == 0.0 and D.is_collapsed(rep)
    one_copy = healthy.clone()
    one_copy[5] = healthy[2] * 1.5  # same direction as another token: max cosine 1
    rep = D.collapse_report(one_copy)
    assert rep["max_cosine"] == pytest.approx(1.0) and D.is_collapsed(rep)


def test_is_collapsed_thresholds_are_strict():
    base = {"context_rms_min": 0.5, "max_cosine": 0.2, "mean_cosine": 0.1}
    assert not D.is_collapsed(base)
    assert not D.is_collapsed({**base, "context_rms_min": 0.1})  # rms exactly at the floor is healthy
    assert D.is_collapsed({**base, "context_rms_min": 0.0999})
    assert not D.is_collapsed({**base, "max_cosine": 0.999})
    assert D.is_collapsed({**base, "max_cosine": 0.9991})
    assert not D.is_collapsed({**base, "mean_cosine": 0.99})
    assert D.is_collapsed({**base, "mean_cosine": 0.9901})
    assert not D.is_collapsed({**base, "max_cosine": math.nan, "mean_cosine": math.nan})
    assert D.is_collapsed({**base, "max_cosine": 0.6}, max_cosine=0.5)
    assert D.is_collapsed({**base, "mean_cosine": 0.6}, mean_cosine=0.5)
    assert D.is_collapsed(base, min_rms=0.6)


def test_the_report_thins_to_1024_rows_by_default():
    norms = torch.arange(1, 1026, dtype=torch.float64) ** 2  # row norms k^2, k = 1..1025
    x = torch.zeros(1025, 2, dtype=torch.float64)
    x[:, 0] = norms
    pick = torch.linspace(0, 1024, 1024).round().long()
    want, full = float(norms[pick].mean()), float(norms.mean())
    assert abs(want - full) > 1.0  # the row left out matters
    assert D.collapse_report(x)["context_norm"] == pytest.approx(want, rel=1e-12)
    assert D.collapse_report(x, max_tokens=None)["context_norm"] == pytest.approx(full, rel=1e-12)
    assert D.collapse_report(x[:1024])["context_norm"] == pytest.approx(float(norms[:1024].mean()), rel=1e-12)


def test_leading_dims_are_flattened_and_the_scale_does_not_matter():
    # [2, 3, 5] contexts (no two dims equal): the same numbers as the [6, 5] matrix; scaled by 1e-3 (norms < 1)
    x = _with_spectrum([3.0, 2.0, 1.0], 6, 5, seed=4) * 1e-3
    flat, cube = x, x.reshape(2, 3, 5)
    torch.testing.assert_close(D.context_rms(cube), D.context_rms(flat).reshape(2, 3))
    assert D.context_rms(cube).shape == (2, 3)
    torch.testing.assert_close(D.pairwise_cosine(cube), D.pairwise_cosine(flat))
    unit = flat / torch.linalg.vector_norm(flat, dim=-1, keepdim=True)
    i, j = torch.triu_indices(6, 6, offset=1)
    torch.testing.assert_close(D.pairwise_cosine(flat), (unit @ unit.T)[i, j])
    ids = torch.tensor([0, 1, 0, 2, 3, 1])
    assert D.distinctness(cube, ids.reshape(2, 3)) == D.distinctness(flat, ids)
    assert D.collapse_report(cube) == pytest.approx(D.collapse_report(flat))


def test_distinctness_pairs_of_more_rows_than_dims():
    # 4 rows in 2 dims; ids make only pairs (0, 1), (2, 3) and the cross pairs with different ids count
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    d = D.distinctness(x, torch.tensor([1, 2, 1, 3]))  # pair (0, 2) is skipped
    cos = [0.0, -1.0, 1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)]  # (0,1), (0,3), (1,2), (1,3), (2,3)
    assert d["max_cosine"] == pytest.approx(max(cos)) and d["mean_cosine"] == pytest.approx(sum(cos) / 5)
    assert d["mean_cosine_distance"] == pytest.approx(1 - sum(cos) / 5) and sum(cos) != 0
    # exactly one pair, with equal ids: nothing to compare
    assert math.isnan(D.distinctness(x[:2], torch.tensor([5, 5]))["max_cosine"])


def test_the_empty_report_has_the_same_keys():
    assert set(D.distinctness(torch.ones(1, 3))) == set(D.distinctness(torch.eye(3)))


def test_effective_rank_of_small_and_exactly_singular_matrices():
    assert D.effective_rank(0.1 * torch.eye(3)) == pytest.approx(3.0)  # singular values sum to 0.3 < 1
    assert D.effective_rank(torch.diag(torch.tensor([2.0, 0.0, 0.0]))) == pytest.approx(1.0)  # exact zeros

