"""``FixedPointResult``: what a solve returns, with explicit statistics (TorchDEQ-style naming)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .stop import Status


@dataclass
class FixedPointResult:
    """Per-token outcome of a fixed-point solve over token shape ``S``.

    ``context [*S, C]``: the converged context (``f(c)`` at the converging iteration), or the last
    finite iterate. ``status [*S]`` int8 :class:`~newllm.stop.Status` codes. ``iterations [*S]``: the
    iteration (1-based) at which the token converged/diverged/stalled, else ``max_iterations``.
    ``evaluations [*S]``: calls of ``f`` spent on the token. ``residual``: final residual in every
    metric, each ``[*S]`` (between ``f(c)`` and ``c`` of the last iteration). ``lowest_residual [*S]``:
    lowest residual seen in the solver's metric. ``trace`` (when recorded): every metric, each
    ``[K, *S]``, NaN after a token stopped.
    """

    context: torch.Tensor
    status: torch.Tensor
    iterations: torch.Tensor
    evaluations: torch.Tensor
    residual: dict[str, torch.Tensor]
    lowest_residual: torch.Tensor
    metric: str
    threshold: float
    max_iterations: int
    trace: dict[str, torch.Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def converged(self) -> torch.Tensor:
        """Bool ``[*S]``."""
        return self.status == Status.CONVERGED

    @property
    def diverged(self) -> torch.Tensor:
        """Bool ``[*S]``: non-finite values, or residual growth beyond the guard."""
        return (self.status == Status.NONFINITE) | (self.status == Status.GROWTH)

    @property
    def stalled(self) -> torch.Tensor:
        return self.status == Status.STALLED

    @property
    def num_tokens(self) -> int:
        return self.status.numel()

    @property
    def rate(self) -> float:
        """Fraction of tokens converged: ``converged / tokens`` in float64 (a float32 mean made 2/3 0.66666669)."""
        return int(self.converged.sum()) / self.num_tokens

    @property
    def mean_iterations(self) -> float:
        """Mean iterations over all tokens (a non-converged token counts its final iteration)."""
        return float(self.iterations.double().mean())

    @property
    def mean_iterations_converged(self) -> float:
        """Mean iterations over converged tokens only (NaN when none converged)."""
        c = self.converged
        return float(self.iterations[c].double().mean()) if bool(c.any()) else math.nan

    def reshaped(self, shape: tuple[int, ...]) -> FixedPointResult:
        """The same result with token axes reshaped from ``[N]`` to ``shape``."""
        ctx = self.context
        trace = None
        if self.trace is not None:
            trace = {m: t.reshape(t.shape[0], *shape) for m, t in self.trace.items()}
        return FixedPointResult(
            context=ctx.reshape(*shape, ctx.shape[-1]),
            status=self.status.reshape(shape),
            iterations=self.iterations.reshape(shape),
            evaluations=self.evaluations.reshape(shape),
            residual={m: r.reshape(shape) for m, r in self.residual.items()},
            lowest_residual=self.lowest_residual.reshape(shape),
            metric=self.metric,
            threshold=self.threshold,
            max_iterations=self.max_iterations,
            trace=trace,
            extra=dict(self.extra),
        )

    def status_names(self) -> list[str]:
        return [Status(int(s)).label for s in self.status.flatten()]

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts and per-token lists."""
        return {
            "metric": self.metric,
            "threshold": self.threshold,
            "tokens": self.num_tokens,
            "converged": int(self.converged.sum()),
            "diverged": int(self.diverged.sum()),
            "stalled": int(self.stalled.sum()),
            "rate": self.rate,
            "mean_iterations": self.mean_iterations,
            "mean_iterations_converged": _nan_to_none(self.mean_iterations_converged),
            "iterations": self.iterations.flatten().tolist(),
            "evaluations": self.evaluations.flatten().tolist(),
            "status": self.status_names(),
            "final_residual": {k: _floats(v) for k, v in self.residual.items()},
        }


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _floats(t: torch.Tensor) -> list[float | None]:
    return [None if not math.isfinite(v) else v for v in t.flatten().double().tolist()]
