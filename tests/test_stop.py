"""The one stop rule (``newllm.stop``): known answers, purity, replay = solver, and that no other
module of the package compares a residual with a threshold."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from newllm import SolverConfig, iterate
from newllm.stop import STALL_IMPROVEMENT, Status, StopRule, StopState, replay, stop

PACKAGE = Path(__file__).resolve().parents[1] / "newllm"
#: Where a residual may meet a threshold: the rule itself, and the comparison primitive it calls.
ALLOWED = {PACKAGE / "stop.py", PACKAGE / "metrics.py"}
THRESHOLD_WORDS = ("threshold", "tolerance")


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def fresh(n: int) -> StopState:
    return StopState.start(n, dtype=torch.float64, device="cpu")


def test_each_status_on_a_known_input():
    rule = StopRule(metric="l2", threshold=0.1, divergence_factor=10.0)
    state = fresh(4)
    _, state = stop(1, t(1, 1, 1, 1), t(1, 1, 1, 1), torch.ones(4, dtype=torch.bool), state, rule)
    status, _ = stop(2, t(0.05, math.nan, 11.0, 0.5), t(0.05, math.nan, 11.0, 0.5),
                     torch.tensor([True, False, True, True]), state, rule)
    assert [Status(int(s)) for s in status] == [Status.CONVERGED, Status.NONFINITE, Status.GROWTH, Status.RUNNING]


def test_precedence_nonfinite_over_converged_over_growth():
    rule = StopRule(metric="mse", threshold=1.0, divergence_factor=2.0)
    state = fresh(2)
    _, state = stop(1, t(5, 5), t(0.1, 0.1), torch.ones(2, dtype=torch.bool), state, rule)
    # row 0: below the threshold in mse but its l2 grew 10x: converged wins; row 1: f not finite
    status, _ = stop(2, t(0.5, 0.5), t(1.0, 1.0), torch.tensor([True, False]), state, rule)
    assert status.tolist() == [Status.CONVERGED, Status.NONFINITE]


def test_warmup_and_strictness():
    rule = StopRule(metric="l2", threshold=0.1, warmup=2)
    assert replay(t(0.01, 0.01, 0.01).unsqueeze(1), rule)[1].tolist() == [3]
    assert replay(t(0.1, 0.1).unsqueeze(1), StopRule(metric="l2", threshold=0.1))[0].tolist() == [
        Status.MAX_ITERATIONS
    ]


def test_confirm_asks_for_stable_convergence_and_reports_the_first_iteration():
    trace = torch.tensor([[0.5, 0.05, 0.05], [0.5, 0.05, 0.05], [0.5, 0.5, 0.05]], dtype=torch.float64)
    # token 0: below at 2 and 3 (stable); token 1: below at 2, above again at 3 (a false convergence)
    trace = torch.tensor([[0.5, 0.5], [0.05, 0.05], [0.05, 0.5]], dtype=torch.float64)
    notes, it_notes, _ = replay(trace, StopRule(metric="l2", threshold=0.1))
    stable, it_stable, idx = replay(trace, StopRule(metric="l2", threshold=0.1, confirm=1))
    assert notes.tolist() == [Status.CONVERGED, Status.CONVERGED] and it_notes.tolist() == [2, 2]
    assert stable.tolist() == [Status.CONVERGED, Status.MAX_ITERATIONS]
    assert it_stable.tolist() == [2, 3] and idx.tolist() == [2, 2]


def test_stall_clock_counts_from_the_last_one_percent_improvement():
    r = [1.0, 0.5] + [0.5 * (1 - STALL_IMPROVEMENT / 2)] * 10  # improves by less than 1% after k=2
    status, iters, _ = replay(t(*r).unsqueeze(1), StopRule(metric="l2", threshold=1e-9, stall_window=3))
    assert status.tolist() == [Status.STALLED] and iters.tolist() == [5]


def test_stop_is_pure():
    state = fresh(3)
    before = [x.clone() for x in (state.lowest, state.lowest_l2, state.last_improve, state.streak)]
    r = t(0.5, 0.2, 3.0)
    stop(1, r, r.clone(), torch.ones(3, dtype=torch.bool), state, StopRule(threshold=0.3, stall_window=2))
    after = (state.lowest, state.lowest_l2, state.last_improve, state.streak)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("confirm", [0, 1, 2])
def test_replay_of_a_recorded_trace_equals_the_solver(confirm):
    g = torch.Generator().manual_seed(3)
    a = torch.rand(6, generator=g, dtype=torch.float64) * 0.9 + 0.05  # per-row contraction factors
    b = torch.randn(6, 4, generator=g, dtype=torch.float64)

    def fn(z, rows):
        aa, bb = (a, b) if rows is None else (a[rows], b[rows])
        return aa.unsqueeze(1) * z + bb

    cfg = SolverConfig(metric="rel", threshold=1e-3, max_iterations=60, confirm=confirm, record_trace=True,
                       divergence_factor=None)
    r = iterate(fn, torch.zeros(6, 4, dtype=torch.float64), cfg)
    status, iters, _ = replay(r.trace["rel"], StopRule.of(cfg))
    assert status.tolist() == r.status.tolist() and iters.tolist() == r.iterations.tolist()
    assert r.converged.all()


def _identifier(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _identifier(node.value)
    return ""


def offending_comparisons(path: Path) -> list[str]:
    """Comparisons (<, <=, >, >=) with a ``*threshold*``/``*tolerance*`` operand, and ``below`` calls."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.Lt | ast.LtE | ast.Gt | ast.GtE) for op in node.ops
        ):
            operands = [node.left, *node.comparators]
            names = [_identifier(x).lower() for x in operands]
            literal = any(isinstance(x, ast.Constant) for x in operands)  # argument checks: tol > 0
            if not literal and any(w in n for n in names for w in THRESHOLD_WORDS):
                out.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Call) and _identifier(node.func) == "below":
            out.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    return out


def test_no_module_but_the_stop_rule_compares_a_residual_with_a_threshold():
    found = [hit for p in sorted(PACKAGE.rglob("*.py")) if p not in ALLOWED for hit in offending_comparisons(p)]
    assert not found, "convergence decided outside newllm.stop:\n" + "\n".join(found)


def test_the_source_check_catches_a_second_copy(tmp_path):
    bad = tmp_path / "drift.py"
    bad.write_text("def done(res, threshold):\n    return res < threshold\n\ndef ok(x, cfg):\n    return M.below(x, 1)\n")
    hits = [h.split(": ", 1)[1] for h in offending_comparisons_at(bad)]
    assert hits == ["res < threshold", "M.below(x, 1)"]


def offending_comparisons_at(path: Path) -> list[str]:
    global PACKAGE
    saved, PACKAGE = PACKAGE, path.parent  # noqa: PLW0603 - relative names for a file outside the package
    try:
        return offending_comparisons(path)
    finally:
        PACKAGE = saved
