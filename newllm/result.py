"""``FixedPointResult``: what a solve returns, with explicit statistics (TorchDEQ-style naming)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .stop import Status


class BoundKind(enum.IntEnum):
    """What an a posteriori error bound rests on (``FixedPointResult.error_bound_kind`` holds the codes)."""

    NONE = 0  # nothing certified: the bound is inf
    CONTRACTION = 1  # r / (1 - k) with k < 1 the Lipschitz constant on a ball around the context
    LINEARISED = 2  # Newton-Kantorovich: from the linearisation I - J, its sigma_min and J's variation

    @property
    def label(self) -> str:
        """The JSON/table name: ``none``, ``contraction``, ``linearised``."""
        return self.name.lower()


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

    With ``solve(..., certify=True)``: ``error_bound [*S]`` float64, an upper bound on the l2 distance
    from ``context`` to a fixed point of the map (``inf`` where nothing is certified), and
    ``error_bound_kind [*S]`` int8 :class:`BoundKind` codes (see :mod:`newllm.certify`).
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
    error_bound: torch.Tensor | None = None
    error_bound_kind: torch.Tensor | None = None

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
            error_bound=None if self.error_bound is None else self.error_bound.reshape(shape),
            error_bound_kind=None if self.error_bound_kind is None else self.error_bound_kind.reshape(shape),
        )

    def status_names(self) -> list[str]:
        return [Status(int(s)).label for s in self.status.flatten()]

    @property
    def certified(self) -> torch.Tensor:
        """Bool ``[*S]``: converged and given a finite error bound (False everywhere when not certified)."""
        if self.error_bound_kind is None:
            return torch.zeros_like(self.converged)
        return self.converged & (self.error_bound_kind != BoundKind.NONE)

    def bound_kind_names(self) -> list[str]:
        """Per-token ``contraction`` | ``linearised`` | ``none`` (empty when not certified)."""
        if self.error_bound_kind is None:
            return []
        return [BoundKind(int(k)).label for k in self.error_bound_kind.flatten()]

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
            **self._bound_summary(),
        }

    def _bound_summary(self) -> dict[str, Any]:
        if self.error_bound is None:
            return {}
        return {
            "error_bound": _floats(self.error_bound),
            "error_bound_kind": self.bound_kind_names(),
            "certified": int(self.certified.sum()),
        }


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _floats(t: torch.Tensor) -> list[float | None]:
    return [None if not math.isfinite(v) else v for v in t.flatten().double().tolist()]
