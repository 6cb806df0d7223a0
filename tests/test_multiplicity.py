"""The fixed-point multiplicity probe (newllm.multiplicity): a known count on a map with three fixed
points, and exactly one fixed point for a contractive model."""

from __future__ import annotations

import torch

from newllm import SolverConfig
from newllm.multiplicity import distinct_fixed_points, fixed_points
from tests.helpers import tiny_model

F64 = torch.float64


def test_a_map_with_three_fixed_points_shows_the_ones_its_starts_reach():
    # z -> tanh(3 z) per coordinate: fixed points 0 and +-0.99491 (the outer two attract, 0 repels)
    def fn(z, rows):
        return torch.tanh(3.0 * z)

    starts = {
        "zeros": torch.zeros(2, 1, dtype=F64),
        "plus": torch.full((2, 1), 0.3, dtype=F64),
        "minus": torch.tensor([[-0.3], [0.5]], dtype=F64),
    }
    cfg = SolverConfig(metric="l2", threshold=1e-12, max_iterations=200, divergence_factor=None)
    points = distinct_fixed_points(fn, starts, ("picard", "anderson"), cfg)
    found = [sorted(round(float(f.context[0]), 4) for f in p) for p in points]
    assert found == [[-0.9949, 0.0, 0.9949], [0.0, 0.9949]]
    assert sorted(points[1][0].found_by) == ["minus/anderson", "minus/picard", "plus/anderson", "plus/picard"]
    outer = next(f for f in points[0] if abs(float(f.context[0])) > 0.5)
    assert outer.bound_kind == "contraction" and outer.error_bound < 1e-10  # |J| = 3 (1 - 0.99^2) = 0.03


def test_a_contractive_model_has_exactly_one_fixed_point_per_token():
    m = tiny_model(seed=5, embed_dim=6, context_dim=6, hidden_dim=6, init_std=0.3).double().eval()
    probe = fixed_points(m, [1, 2, 3, 4], random_starts=2, seed=0)
    assert probe.starts == ["zeros", "random0", "random1", "carry"]
    assert probe.counts.tolist() == [1, 1, 1, 1]
    for p in probe.points:
        assert len(p[0].found_by) == 8  # every start, both solvers
        assert p[0].sigma_max < 1 and p[0].bound_kind == "contraction" and not p[0].degenerate
    d = probe.to_dict()
    assert d["tokens_with_several"] == 0 and d["other_collapse"] is None and d["primary_collapse"] is not None
