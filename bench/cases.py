"""What the benchmarks measure: architectures, token sets, tolerances, the trained models, the threads.

Every count is deterministic given the seeds below (model seed 0, Phase 1 seed 0, id generator 0) and
the torch threads (``NEWLLM_BENCH_THREADS``, default 1: stable on shared 2-core machines; the roofline
is measured with the same threads and the same clock, see :func:`clock`).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict

import torch

from newllm import ModelConfig, build_model, spread_token_ids
from newllm.model import CVFPModel
from newllm.phase1 import Phase1Config, train_phase1

THREADS = int(os.environ.get("NEWLLM_BENCH_THREADS", "1"))
MODEL_SEED = 0

ARCHS: dict[str, ModelConfig] = {
    "sequential": ModelConfig(arch="sequential"),
    "layerwise": ModelConfig(arch="layerwise"),
    "mixed": ModelConfig(structure=(2, 2)),
}
TOKEN_COUNTS = (1, 10, 100, 512)
#: name -> (metric, threshold): the seeds' Phase 1 tolerance and a strict, scale-free one.
TOLERANCES = {"mse0.01": ("mse", 0.01), "rel1e-4": ("rel", 1e-4)}
METHODS = ("picard", "anderson")
#: The seeds' untrained tests iterated up to 200 times (seed 000); convergence is checked from iteration 1.
MAX_ITERATIONS = 200
#: Phase 1 as the seeds trained (001/002: 3 epochs, Adam lr 1e-4, 50 iterations, mse < 0.01, no warmup),
#: with the batched loop, on all benchmark token sets at once.
TRAINING = Phase1Config(loop="batched", batch_samples=len(TOKEN_COUNTS), seed=0)


def token_ids(n: int, vocab_size: int, *, seed: int = 0) -> list[int]:
    """The ids of an ``n``-token benchmark: ``spread_token_ids(n)`` (the seeds' 100, 200, ...) up to
    512; above, ``n // 512`` samples of 512 ids drawn uniformly from a generator seeded ``seed``."""
    if n <= 512:
        return spread_token_ids(n, vocab_size)
    if n % 512:
        raise ValueError(f"token counts above 512 must be whole 512-token samples, got {n}")
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (n,), generator=gen).tolist()


def clock(device: torch.device | str) -> tuple[str, Callable[[], float]]:
    """``(name, clock)`` for timing on ``device``: this process's CPU time for single-threaded CPU runs
    (steady on a shared machine), else wall time (GPU work is timed with synchronisation)."""
    if torch.device(device).type == "cpu" and THREADS == 1:
        return "process_time", time.process_time
    return "perf_counter", time.perf_counter


def device_name(device: torch.device | str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine()


class ModelBank:
    """Untrained and Phase 1-trained models, built once per session and shared (solves leave them unchanged)."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, str], CVFPModel] = {}
        self.training: dict[tuple[str, str], list[dict]] = {}

    def get(self, arch: str, state: str, device: torch.device | str) -> CVFPModel:
        dev = torch.device(device)
        key = (arch, state, str(dev))
        if key not in self._models:
            model = build_model(ARCHS[arch], seed=MODEL_SEED).to(dev)
            if state == "trained":
                samples = [token_ids(n, model.config.vocab_size) for n in TOKEN_COUNTS]
                run = train_phase1(model, samples, TRAINING, progress=False)
                self.training[(arch, str(dev))] = [asdict(e) for e in run.epochs]
            elif state != "untrained":
                raise ValueError(f"state must be 'untrained' or 'trained', got {state!r}")
            self._models[key] = model.eval()
        return self._models[key]
