"""Per-row bookkeeping shared by every solver: evaluations, residuals, traces, and the stop rule."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .. import metrics as M
from ..result import FixedPointResult
from ..stop import Status, StopRule, StopState, reported_iteration, stop

if TYPE_CHECKING:
    from ..config import SolverConfig

#: ``fn(z_rows [n, D], rows [n] | None) -> f(z_rows) [n, D]``
RowMap = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class RowBook:
    """Iterates, statuses and statistics of ``N`` rows; :meth:`record` scores one iteration."""

    def __init__(self, z0: torch.Tensor, config: SolverConfig):
        n = z0.shape[0]
        dev = z0.device
        self.cfg = config
        self.rule = StopRule.of(config)
        self.n = n
        self.z = z0.clone()
        self.status = torch.full((n,), int(Status.MAX_ITERATIONS), dtype=torch.int8, device=dev)
        self.iterations = torch.full((n,), config.max_iterations, dtype=torch.long, device=dev)
        self.evaluations = torch.zeros(n, dtype=torch.long, device=dev)
        nan = torch.full((n,), math.nan, dtype=z0.dtype, device=dev)
        self.residual = {m: nan.clone() for m in M.METRICS}
        self.state = StopState.start(n, dtype=z0.dtype, device=dev)
        self.active = torch.arange(n, device=dev)
        #: Whether the last :meth:`record` stopped any row.
        self.any_stopped = False
        #: Residuals (every metric, each ``[n]``) of the rows scored by the last :meth:`record`
        #: (after :func:`drive` drops stopped rows: of the rows still active, in their order).
        self.last: dict[str, torch.Tensor] = {}
        self.trace: dict[str, list[torch.Tensor]] | None = (
            {m: [] for m in M.METRICS} if config.record_trace else None
        )

    def evaluate(self, fn: RowMap) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(rows, z, f(z))`` for the active rows."""
        rows = self.active
        z = self.z if rows.numel() == self.n else self.z[rows]
        return rows, z, self.call(fn, rows, z)

    def call(self, fn: RowMap, rows: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``f(z) [r, D]`` for the iterates ``z [r, D]`` of ``rows``; ValueError if ``fn`` changes the shape."""
        f = fn(z, None if rows.numel() == self.n else rows)
        if f.shape != z.shape:
            raise ValueError(f"the map returned shape {tuple(f.shape)} for input shape {tuple(z.shape)}")
        return f

    def record(self, k: int, rows: torch.Tensor, z: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Score iteration ``k`` for ``rows`` (iterates ``z``, images ``f``); return the bool mask of rows going on.

        Sets :attr:`any_stopped`. When every row is active, per-row state is updated in place through
        slices instead of index lists (same values, fewer copies).
        """
        at = slice(None) if rows.numel() == self.n else rows  # rows is arange(n) when all are active
        res = M.all_residuals(f, z)
        self.last = res
        self.evaluations[at] += 1
        for m, r in res.items():
            self.residual[m][at] = r
        if self.trace is not None:
            for m, r in res.items():
                row = torch.full((self.n,), math.nan, dtype=r.dtype, device=r.device)
                row[rows] = r
                self.trace[m].append(row)
        r_l2 = res["l2"]
        status, part = stop(k, res[self.rule.metric], r_l2, rows_finite(f, r_l2), self.state.rows(at), self.rule)
        self.state.put(at, part)
        stop_mask = status != Status.RUNNING
        self.any_stopped = bool(stop_mask.any())
        if self.any_stopped:
            stop_rows = rows[stop_mask]
            self.status[stop_rows] = status[stop_mask]
            self.iterations[stop_rows] = reported_iteration(k, status[stop_mask], self.rule)
            bad = status == Status.NONFINITE
            keep_f = stop_mask & ~bad
            self.z[rows[keep_f]] = f[keep_f]
            self.z[rows[bad]] = z[bad]  # the last finite iterate (solvers may hold iterates outside self.z)
        return ~stop_mask

    def result(self) -> FixedPointResult:
        trace = None
        if self.trace is not None:
            trace = {m: torch.stack(v) if v else self.z.new_empty(0, self.n) for m, v in self.trace.items()}
        return FixedPointResult(
            context=self.z,
            status=self.status,
            iterations=self.iterations,
            evaluations=self.evaluations,
            residual=self.residual,
            lowest_residual=self.state.lowest,
            metric=self.cfg.metric,
            threshold=self.cfg.threshold,
            max_iterations=self.cfg.max_iterations,
            trace=trace,
        )


#: ``step(k, rows [r], z [r, D], f [r, D]) -> next z [r, D]`` of the rows still active after iteration ``k``.
RowStep = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def drive(fn: RowMap, book: RowBook, step: RowStep, keep: Callable[[torch.Tensor], None] | None = None) -> None:
    """The loop of a solver that holds its own iterates of the active rows.

    Each iteration evaluates ``fn``, scores it with :meth:`RowBook.record`, drops the rows that stopped
    (``keep(go)`` compacts the solver's per-row state; :attr:`RowBook.last` is compacted too), then
    ``z <- step(k, rows, z, f)``. Writes the last iterates of the rows still running into ``book.z``.
    """
    rows, z = book.active, book.z.clone()
    for k in range(1, book.cfg.max_iterations + 1):
        if rows.numel() == 0:
            break
        f = book.call(fn, rows, z)
        go = book.record(k, rows, z, f)
        if book.any_stopped:
            rows, z, f = rows[go], z[go], f[go]
            book.last = {m: r[go] for m, r in book.last.items()}
            if keep is not None:
                keep(go)
            book.active = rows
            if rows.numel() == 0:
                break
        z = step(k, rows, z, f)
    book.z[rows] = z


def rows_finite(f: torch.Tensor, r_l2: torch.Tensor) -> torch.Tensor:
    """Bool ``[n]``: every entry of the row of ``f`` is finite.

    A finite l2 residual ``||f - z||`` implies a finite ``f`` (an inf or NaN entry makes the change
    inf or NaN), so the full check over ``f`` runs only when some residual is not finite.
    """
    ok = torch.isfinite(r_l2)
    return ok if bool(ok.all()) else torch.isfinite(f).all(dim=-1)
