"""The peer gate: newllm's Anderson vs TorchDEQ 0.1.0 (Broyden and Anderson, its defaults) on the
problems of bench/peers.py, every output judged by one independent residual check. Fails where
newllm converges fewer tokens than a peer, or needs a higher median NFE than a peer converging as
many. Wall-time ratios go to ``extra_info``-style printing, not into the gate (times are noisy on
shared machines; reports/certify/ holds a measured table).

Needs the ``peers`` extra (``pip install -e ".[peers]"``); skipped cleanly without torchdeq.
Run: ``pytest bench/test_peers.py -n 0``.
"""

from __future__ import annotations

import pytest
import torch

from bench import peers

pytest.importorskip("torchdeq", reason="the peers extra (torchdeq) is not installed")


@pytest.mark.parametrize("name", list(peers.PROBLEMS))
def test_newllm_is_ahead_of_torchdeq(name):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        row = peers.compare(peers.problem(name))
    finally:
        torch.set_num_threads(threads)
    print(name, row["solvers"], "wall ratio newllm/peer", row["wall_ratio"])
    assert peers.losses(row) == []
