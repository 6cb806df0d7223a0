"""Measurement helpers for the benchmarks: exact step FLOPs, a synchronising timer, the
same-shape matmul chain (the roofline) and the iteration statistics of a solve.

FLOPs count the matrix multiplies of :meth:`CVFPModel.step` only, 2 per multiply-add. Per token and
block of ``n`` layers: first layer ``(E + C)·H``, each further layer ``H·H``, gates ``H·3C``. Bias adds,
activations, LayerNorm and the solver's bookkeeping are not counted (they are the overhead that the
fraction of the roofline exposes).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from ..config import ModelConfig
from ..result import FixedPointResult


def step_matmul_shapes(config: ModelConfig) -> list[tuple[int, int]]:
    """``(in, out)`` of every matrix multiply of one step, in order."""
    e, c, h = config.embed_dim, config.context_dim, config.hidden_dim
    shapes: list[tuple[int, int]] = []
    for n in config.blocks:
        shapes.append((e + c, h))
        shapes.extend((h, h) for _ in range(n - 1))
        shapes.append((h, 3 * c))
    return shapes


def step_flops(config: ModelConfig) -> int:
    """Matmul FLOPs of one step for one token: ``2 · Σ in·out`` over :func:`step_matmul_shapes`."""
    return 2 * sum(a * b for a, b in step_matmul_shapes(config))


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(
    fn: Callable[[], Any], device: torch.device | str, clock: Callable[[], float] = time.perf_counter
) -> tuple[float, Any]:
    """``(seconds, fn())`` on ``clock`` with the device synchronised before and after.

    ``time.process_time`` (this process's CPU time) is steadier than wall time for single-threaded
    CPU work on a shared machine; GPU work needs wall time.
    """
    synchronize(device)
    t0 = clock()
    out = fn()
    synchronize(device)
    return clock() - t0, out


def synced(fn: Callable[..., Any], device: torch.device | str) -> Callable[..., Any]:
    """``fn`` wrapped so that a caller's timer sees all of its device work."""

    def run(*args: Any, **kwargs: Any) -> Any:
        synchronize(device)
        out = fn(*args, **kwargs)
        synchronize(device)
        return out

    return run


class MatmulChain:
    """Plain ``torch.mm`` calls of a step's shapes for ``rows`` rows: the roofline of a solve.

    Inputs, weights and outputs are allocated once (random from ``generator``), so :meth:`__call__`
    does nothing but the multiplies; :attr:`flops` is ``rows · step_flops(config)``.
    """

    def __init__(
        self,
        config: ModelConfig,
        rows: int,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ):
        if not (isinstance(rows, int) and rows >= 1):
            raise ValueError(f"rows must be a positive integer, got {rows!r}")
        gen = torch.Generator().manual_seed(0) if generator is None else generator
        self.device = torch.device(device)
        self.ops = []
        for a, b in step_matmul_shapes(config):
            x = torch.randn(rows, a, generator=gen).to(self.device, dtype)
            w = torch.randn(a, b, generator=gen).to(self.device, dtype)
            out = torch.empty(rows, b, device=self.device, dtype=dtype)
            self.ops.append((x, w, out))
        self.flops = rows * step_flops(config)

    def __call__(self) -> None:
        for x, w, out in self.ops:
            torch.mm(x, w, out=out)

    def seconds(self, repeat: int = 5, clock: Callable[[], float] = time.perf_counter) -> float:
        """Fastest of ``repeat`` synchronised runs on ``clock`` (after one warm-up run)."""
        if not (isinstance(repeat, int) and repeat >= 1):
            raise ValueError(f"repeat must be a positive integer, got {repeat!r}")
        self()
        return min(timed(self, self.device, clock)[0] for _ in range(repeat))


def nearest_rank(values: list[float], q: float) -> float:
    """The ``q``-quantile by nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    if not values:
        raise ValueError("nearest_rank needs at least one value")
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q!r}")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def iteration_counts(result: FixedPointResult) -> dict[str, float]:
    """Deterministic counts of a solve: median (mean of the middle two), p90 (nearest rank) and max
    iterations, mean iterations and evaluations, convergence rate, diverged tokens."""
    its = [float(v) for v in result.iterations.flatten().tolist()]
    evals = result.evaluations.flatten().double()
    return {
        "tokens": float(len(its)),
        "median_iterations": float(statistics.median(its)),
        "p90_iterations": nearest_rank(its, 0.9),
        "max_iterations": max(its),
        "mean_iterations": sum(its) / len(its),
        "mean_evaluations": float(evals.mean()),
        "rate": result.rate,
        "diverged": float(result.diverged.sum()),
    }
