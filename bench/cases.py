"""What the benchmarks measure, picked from the experiment matrix (``newllm.matrix``): every
architecture, the regression models (untrained and trained, ``newllm.matrix.regression``), two
decision rules, both solvers, 1 to 512 tokens; the threads and the clock.

Every count is deterministic given the seeds (model seed 0, Phase 1 seed 0, id generator 0) and the
torch threads (``NEWLLM_BENCH_THREADS``, default 1: stable on shared 2-core machines; the roofline
is measured with the same threads and the same clock, see :func:`clock`).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import torch

from newllm.matrix import build
from newllm.matrix import regression as R
from newllm.matrix import token_ids as matrix_token_ids
from newllm.model import CVFPModel

THREADS = int(os.environ.get("NEWLLM_BENCH_THREADS", "1"))
#: Solved at the counts the trained models were trained on.
TOKEN_COUNTS = R.TRAINING_COUNTS
#: Decision rules (newllm.matrix.rules): the seeds' mse < 0.01 and a strict, scale-free rel < 1e-4.
RULES = ("mse", "rel1e-4")
METHODS = ("picard", "anderson")


def token_ids(n: int, vocab_size: int, *, seed: int = 0) -> list[int]:
    """The ids of an ``n``-token benchmark: the ``spread`` token set (the seeds' 100, 200, ...) up to
    512; above, the ``random`` set (``n`` must be whole 512-token samples), generator seed ``seed``."""
    if n <= 512:
        return matrix_token_ids("spread", n, vocab_size)
    if n % 512:
        raise ValueError(f"token counts above 512 must be whole 512-token samples, got {n}")
    return matrix_token_ids("random", n, vocab_size, seed=seed)


def clock(device: torch.device | str) -> tuple[str, Callable[[], float]]:
    """``(name, clock)`` for timing on ``device``: this process's CPU time for single-threaded CPU runs
    (steady on a shared machine), else wall time (GPU work is timed with synchronisation)."""
    if torch.device(device).type == "cpu" and THREADS == 1:
        return "process_time", time.process_time
    return "perf_counter", time.perf_counter


def machine(device: torch.device | str, clock_name: str) -> dict[str, str | int]:
    """The ``extra_info`` fields naming where a timing ran: ``device``, ``device_name``, ``threads``, ``clock``."""
    return {"device": str(device), "device_name": device_name(device), "threads": THREADS, "clock": clock_name}


def device_name(device: torch.device | str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine()


class ModelBank:
    """The regression models, built once per session (trained ones through the matrix cache, so at
    most once per code version) and shared: solves leave them unchanged."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, str], CVFPModel] = {}
        self.training: dict[tuple[str, str], list[dict]] = {}

    def get(self, arch: str, state: str, device: torch.device | str) -> CVFPModel:
        dev = torch.device(device)
        key = (arch, state, str(dev))
        if key not in self._models:
            built = build(R.spec(arch, state, device=str(dev), threads=THREADS))
            if built.history:
                self.training[(arch, str(dev))] = built.history["epochs"]
            self._models[key] = built.model
        return self._models[key]
