"""The one stop rule: per-token residuals of an iteration -> a :class:`Status` per token.

Every convergence decision of the package goes through :func:`stop`: the solvers, both Phase 1
loops, and the reproduction's re-judging of recorded traces. Nothing else compares a residual with
a threshold (a test walks the source to keep it so).

At iteration ``k`` (1-based) a token's status is, in this order of precedence:

* ``NONFINITE`` when ``f`` (or its residual) is not finite;
* ``CONVERGED`` when ``k > warmup`` and the residual in ``metric`` is strictly below ``threshold`` for
  ``1 + confirm`` consecutive iterations (``confirm=0``: the notes' rule; ``confirm=1``: *stable*
  convergence, still below one step later);
* ``GROWTH`` when the l2 residual exceeds ``divergence_factor`` times the lowest l2 residual so far;
* ``STALLED`` when ``k > warmup`` and the lowest residual has not improved by :data:`STALL_IMPROVEMENT`
  (relative) for ``stall_window`` iterations;
* ``RUNNING`` otherwise. The iteration budget is the caller's loop bound: a token still running when it
  ends is reported as ``MAX_ITERATIONS``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import torch

from . import metrics as M

#: Relative improvement of the lowest residual that resets the stall clock.
STALL_IMPROVEMENT = 0.01


class Status(enum.IntEnum):
    """Per-token outcome codes (``FixedPointResult.status`` holds them as int8)."""

    RUNNING = 0  # still iterating; never in a returned result
    CONVERGED = 1
    NONFINITE = 2
    GROWTH = 3
    STALLED = 4
    MAX_ITERATIONS = 5

    @property
    def label(self) -> str:
        """The JSON/table name: ``converged``, ``nonfinite``, ``growth``, ``stalled``, ``max_iterations``."""
        return self.name.lower()


@dataclass(frozen=True)
class StopRule:
    """What :func:`stop` decides with (see the module doc). Build from a config with :meth:`of`."""

    metric: str = "mse"
    threshold: float = 0.01
    warmup: int = 0
    divergence_factor: float | None = None
    stall_window: int | None = None
    confirm: int = 0

    @classmethod
    def of(cls, config: Any, **overrides: Any) -> StopRule:
        """The rule of a ``SolverConfig``/``Phase1Config`` (fields it lacks keep their defaults)."""
        fields = {f: getattr(config, f) for f in cls.__dataclass_fields__ if hasattr(config, f)}
        return cls(**{**fields, **overrides})


@dataclass(frozen=True)
class StopState:
    """Per-token memory of the rule, each ``[n]``: lowest residuals so far (metric, l2), the last
    iteration that improved the lowest by 1%, and the current run of iterations below the threshold."""

    lowest: torch.Tensor
    lowest_l2: torch.Tensor
    last_improve: torch.Tensor
    streak: torch.Tensor

    @classmethod
    def start(cls, n: int, *, dtype: torch.dtype, device: torch.device | str) -> StopState:
        inf = torch.full((n,), math.inf, dtype=dtype, device=device)
        zero = torch.zeros(n, dtype=torch.long, device=device)
        return cls(lowest=inf, lowest_l2=inf.clone(), last_improve=zero, streak=zero.clone())

    def rows(self, at: slice | torch.Tensor) -> StopState:
        """The state of a subset of tokens."""
        return StopState(self.lowest[at], self.lowest_l2[at], self.last_improve[at], self.streak[at])

    def put(self, at: slice | torch.Tensor, part: StopState) -> None:
        """Write ``part`` (from :meth:`rows`) back into the tokens ``at`` (in place)."""
        self.lowest[at] = part.lowest
        self.lowest_l2[at] = part.lowest_l2
        self.last_improve[at] = part.last_improve
        self.streak[at] = part.streak


def stop(
    k: int,
    residual: torch.Tensor,
    residual_l2: torch.Tensor,
    finite: torch.Tensor,
    state: StopState,
    rule: StopRule,
) -> tuple[torch.Tensor, StopState]:
    """Status of iteration ``k`` for ``n`` tokens, and the updated state.

    ``residual [n]`` in ``rule.metric`` and ``residual_l2 [n]``, both between ``f(c_k)`` and ``c_k``;
    ``finite [n]`` bool (``f(c_k)`` finite). Returns int8 ``[n]`` :class:`Status` codes. Pure: the
    inputs are not modified.
    """
    ok = finite & torch.isfinite(residual)
    improved = residual < state.lowest * (1.0 - STALL_IMPROVEMENT)
    last_improve = torch.where(improved, k, state.last_improve)
    lowest = torch.where(ok, torch.fmin(state.lowest, residual), state.lowest)
    lowest_l2 = torch.where(ok, torch.fmin(state.lowest_l2, residual_l2), state.lowest_l2)
    status = torch.where(ok, int(Status.RUNNING), int(Status.NONFINITE)).to(torch.int8)
    streak = state.streak
    if k > rule.warmup:
        below = ok & M.below(residual, rule.threshold)  # the package's only residual-vs-threshold decision
        streak = torch.where(below, streak + 1, 0)
        conv = streak > rule.confirm
        status = torch.where(conv & (status == Status.RUNNING), int(Status.CONVERGED), status)
    if rule.divergence_factor is not None:
        grow = ok & (residual_l2 > rule.divergence_factor * lowest_l2)
        status = torch.where(grow & (status == Status.RUNNING), int(Status.GROWTH), status)
    if rule.stall_window is not None and k > rule.warmup:
        since = k - torch.clamp(last_improve, min=rule.warmup)
        stall = ok & (since >= rule.stall_window)
        status = torch.where(stall & (status == Status.RUNNING), int(Status.STALLED), status)
    return status.to(torch.int8), StopState(lowest, lowest_l2, last_improve, streak)


def reported_iteration(k: int, status: torch.Tensor, rule: StopRule) -> torch.Tensor:
    """The iteration a token that stopped at ``k`` with ``status [n]`` reports: for ``CONVERGED`` the
    first iteration of its run below the threshold (``k - confirm``), else ``k``."""
    return torch.where(status == Status.CONVERGED, k - rule.confirm, k)


def replay(
    residual: torch.Tensor,
    rule: StopRule,
    *,
    residual_l2: torch.Tensor | None = None,
    finite: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply :func:`stop` to recorded traces, each ``[K, n]``: ``residual`` in ``rule.metric``,
    ``residual_l2`` (default: ``residual``), ``finite`` (default: ``residual`` finite).

    Returns ``(status [n] int8, iterations [n], stop_index [n])``: the first stopping iteration's
    status (``MAX_ITERATIONS`` if none within ``K``), the iteration it reports, and the trace row
    ``k - 1`` at which the token stopped (``K - 1`` when it never did).
    """
    k_max, n = residual.shape
    dev = residual.device
    l2 = residual if residual_l2 is None else residual_l2
    fin = torch.isfinite(residual) if finite is None else finite
    state = StopState.start(n, dtype=residual.dtype, device=dev)
    final = torch.full((n,), int(Status.MAX_ITERATIONS), dtype=torch.int8, device=dev)
    iters = torch.full((n,), k_max, dtype=torch.long, device=dev)
    index = torch.full((n,), k_max - 1, dtype=torch.long, device=dev)
    open_ = torch.ones(n, dtype=torch.bool, device=dev)
    for k in range(1, k_max + 1):
        status, state = stop(k, residual[k - 1], l2[k - 1], fin[k - 1], state, rule)
        now = open_ & (status != Status.RUNNING)
        final = torch.where(now, status, final)
        iters = torch.where(now, reported_iteration(k, status, rule), iters)
        index = torch.where(now, k - 1, index)
        open_ = open_ & ~now
        if not bool(open_.any()):
            break
    return final, iters, index
