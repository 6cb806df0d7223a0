import math

import pytest
import torch

from newllm import diagnostics as D


def test_effective_rank_known_values():
    assert D.effective_rank(torch.ones(5, 4)) == pytest.approx(1.0)
    assert D.effective_rank(torch.eye(4)) == pytest.approx(4.0)
    assert D.effective_rank(torch.zeros(3, 3)) == 0.0


def test_distinctness_and_collapse_flag():
    same = torch.ones(4, 8)
    rep = D.collapse_report(same)
    assert rep["max_cosine"] == pytest.approx(1.0) and D.is_collapsed(rep)
    distinct = torch.eye(4, 8)
    rep = D.collapse_report(distinct)
    assert rep["max_cosine"] == pytest.approx(0.0) and not D.is_collapsed(rep)
    assert D.is_collapsed(D.collapse_report(torch.zeros(3, 8)))


def test_equal_token_ids_are_not_compared():
    x = torch.stack([torch.ones(4), torch.ones(4), -torch.ones(4)])
    d = D.distinctness(x, torch.tensor([7, 7, 8]))
    assert d["max_cosine"] == pytest.approx(-1.0)
    assert math.isnan(D.distinctness(torch.ones(1, 4))["max_cosine"])
