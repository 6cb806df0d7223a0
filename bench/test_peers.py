"""The peer gate: newllm's Anderson vs TorchDEQ 0.1.0 (Broyden and Anderson, its defaults) on the
problems of bench/peers.py, every output judged by one independent residual check. Fails where
newllm converges fewer tokens than a peer, or needs a higher median NFE than a peer converging as
many. Wall-time ratios go to ``extra_info``-style printing, not into the gate (times are noisy on
shared machines; reports/certify/ holds a measured table).

The comparisons need the ``peers`` extra (``pip install -e ".[peers]"``) and skip cleanly without torchdeq.
Run: ``pytest bench/test_peers.py -n 0``.
"""

from __future__ import annotations

import pytest
import torch

from bench import peers


def _row(ours: tuple[int, float], peer: tuple[int, float]) -> dict:
    s = {"newllm-anderson": {"converged": ours[0], "median_nfe": ours[1]},
         "torchdeq-broyden": {"converged": peer[0], "median_nfe": peer[1]}}
    return {"problem": "p", "solvers": s}


def test_the_gate_counts_converged_tokens_first_then_evaluations():
    assert peers.losses(_row((60, 50.0), (60, 100.0))) == []
    assert peers.losses(_row((60, 500.0), (5, 100.0))) == []  # the peer converges fewer: its NFE does not count
    assert peers.losses(_row((59, 50.0), (60, 500.0))) == ["p: torchdeq-broyden converges 60 tokens, newllm 59"]
    assert peers.losses(_row((60, 101.0), (60, 100.0))) == ["p: torchdeq-broyden median NFE 100, newllm 101"]


@pytest.mark.parametrize("name", list(peers.PROBLEMS))
def test_newllm_is_ahead_of_torchdeq(name):
    pytest.importorskip("torchdeq", reason="the peers extra (torchdeq) is not installed")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        row = peers.compare(peers.problem(name))
    finally:
        torch.set_num_threads(threads)
    print(name, row["solvers"], "wall ratio newllm/peer", row["wall_ratio"])
    assert peers.losses(row) == []
