"""Batched fixed-point iteration of a map on rows: ``z [N, D] -> f(z) [N, D]``.

Generic over the map, so the same loop serves the model (:func:`newllm.solve`) and known-answer
maps in the tests. ``fn(z, rows)`` gets the iterates of the still-active rows and their indices
(``rows`` is None when every row is active) and returns ``f`` of those rows. No Python loop over rows.

Per row, iteration ``k`` (1-based) evaluates ``f(z_k)`` and the residual between ``f(z_k)`` and
``z_k`` in every registered metric. The row stops at the first ``k``:

* with non-finite ``f``: status ``nonfinite``; context stays the last finite iterate;
* with ``k > warmup`` and residual < threshold (in ``config.metric``): ``converged``, context ``f(z_k)``;
* whose l2 residual exceeds ``divergence_factor`` × its lowest: ``growth`` (diverged);
* after ``k > warmup``, whose lowest residual has not improved by 1% in ``stall_window`` iterations: ``stalled``.

Methods: ``picard`` (``z <- z + beta (f(z) - z)``) and ``anderson`` (type II in difference form,
history m, float64 least squares with residual-scaled Tikhonov regularisation, Picard fallback on a
singular system, history restart whenever the residual grows).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from . import metrics as M
from .config import SolverConfig
from .result import CONVERGED, GROWTH, NONFINITE, STALLED, FixedPointResult

#: ``fn(z_rows [n, D], rows [n] | None) -> f(z_rows) [n, D]``
RowMap = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]

#: Anderson drops a row's history when its l2 residual exceeds this multiple of the previous one.
#: 1.0 (restart on any increase) measured best on the untrained full-size models (bench/test_anderson.py).
ANDERSON_RESTART_FACTOR = 1.0
#: Relative improvement of the lowest residual that resets the stall clock.
STALL_IMPROVEMENT = 0.01


class _Book:
    """Per-row bookkeeping shared by every method."""

    def __init__(self, z0: torch.Tensor, config: SolverConfig):
        n = z0.shape[0]
        dev = z0.device
        self.cfg = config
        self.n = n
        self.z = z0.clone()
        self.status = torch.zeros(n, dtype=torch.int8, device=dev)
        self.iterations = torch.full((n,), config.max_iterations, dtype=torch.long, device=dev)
        self.evaluations = torch.zeros(n, dtype=torch.long, device=dev)
        nan = torch.full((n,), math.nan, dtype=z0.dtype, device=dev)
        self.residual = {m: nan.clone() for m in M.METRICS}
        self.lowest = torch.full((n,), math.inf, dtype=z0.dtype, device=dev)
        self.lowest_l2 = torch.full((n,), math.inf, dtype=z0.dtype, device=dev)
        self.last_improve = torch.zeros(n, dtype=torch.long, device=dev)
        self.active = torch.arange(n, device=dev)
        #: Whether the last :meth:`record` stopped any row.
        self.any_stopped = False
        self.trace: dict[str, list[torch.Tensor]] | None = (
            {m: [] for m in M.METRICS} if config.record_trace else None
        )

    def record(self, k: int, rows: torch.Tensor, z: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Score iteration ``k`` for ``rows`` (iterates ``z``, images ``f``); return the bool mask of rows going on.

        Sets :attr:`any_stopped`. When every row is active, per-row state is updated in place through
        slices instead of index lists (same values, fewer copies).
        """
        cfg = self.cfg
        at = slice(None) if rows.numel() == self.n else rows  # rows is arange(n) when all are active
        res = M.all_residuals(f, z)
        self.evaluations[at] += 1
        for m, r in res.items():
            self.residual[m][at] = r
        if self.trace is not None:
            for m, r in res.items():
                row = torch.full((self.n,), math.nan, dtype=r.dtype, device=r.device)
                row[rows] = r
                self.trace[m].append(row)
        r_metric, r_l2 = res[cfg.metric], res["l2"]
        finite = _rows_finite(f, r_l2) & torch.isfinite(r_metric)

        improved = r_metric < self.lowest[at] * (1.0 - STALL_IMPROVEMENT)
        self.last_improve[at] = torch.where(improved, k, self.last_improve[at])
        self.lowest[at] = torch.where(finite, torch.fmin(self.lowest[at], r_metric), self.lowest[at])
        lowest_l2 = torch.where(finite, torch.fmin(self.lowest_l2[at], r_l2), self.lowest_l2[at])
        self.lowest_l2[at] = lowest_l2

        status = torch.zeros_like(rows, dtype=torch.int8)
        status = torch.where(~finite, NONFINITE, status)
        if k > cfg.warmup:
            conv = finite & M.below(r_metric, cfg.threshold)
            status = torch.where(conv & (status == 0), CONVERGED, status)
        if cfg.divergence_factor is not None:
            grow = finite & (r_l2 > cfg.divergence_factor * lowest_l2)
            status = torch.where(grow & (status == 0), GROWTH, status)
        if cfg.stall_window is not None and k > cfg.warmup:
            since = k - torch.maximum(self.last_improve[at], torch.full_like(rows, cfg.warmup))
            stall = finite & (since >= cfg.stall_window)
            status = torch.where(stall & (status == 0), STALLED, status)

        stop = status != 0
        self.any_stopped = bool(stop.any())
        if self.any_stopped:
            stop_rows = rows[stop]
            self.status[stop_rows] = status[stop]
            self.iterations[stop_rows] = k
            keep_f = stop & finite
            self.z[rows[keep_f]] = f[keep_f]
        return ~stop

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
            lowest_residual=self.lowest,
            metric=self.cfg.metric,
            threshold=self.cfg.threshold,
            max_iterations=self.cfg.max_iterations,
            trace=trace,
        )


def iterate(fn: RowMap, z0: torch.Tensor, config: SolverConfig) -> FixedPointResult:
    """Solve ``z = f(z)`` for every row of ``z0 [N, D]``; see the module doc for the stopping rules."""
    if z0.dim() != 2:
        raise ValueError(f"z0 must be [N, D], got shape {tuple(z0.shape)}")
    book = _Book(z0, config)
    if config.method == "anderson":
        _anderson(fn, book)
    else:
        _picard(fn, book)
    return book.result()


def _eval(fn: RowMap, book: _Book) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows = book.active
    whole = rows.numel() == book.n
    z = book.z if whole else book.z[rows]
    f = fn(z, None if whole else rows)
    if f.shape != z.shape:
        raise ValueError(f"the map returned shape {tuple(f.shape)} for input shape {tuple(z.shape)}")
    return rows, z, f


def _rows_finite(f: torch.Tensor, r_l2: torch.Tensor) -> torch.Tensor:
    """Bool ``[n]``: every entry of the row of ``f`` is finite.

    A finite l2 residual ``||f - z||`` implies a finite ``f`` (an inf or NaN entry makes the change
    inf or NaN), so the full check over ``f`` runs only when some residual is not finite.
    """
    ok = torch.isfinite(r_l2)
    return ok if bool(ok.all()) else torch.isfinite(f).all(dim=-1)


def _picard(fn: RowMap, book: _Book) -> None:
    beta = book.cfg.damping
    for k in range(1, book.cfg.max_iterations + 1):
        if book.active.numel() == 0:
            break
        rows, z, f = _eval(fn, book)
        go = book.record(k, rows, z, f)
        nxt = f if beta == 1.0 else z + beta * (f - z)
        if book.any_stopped:
            book.z[rows[go]] = nxt[go]
            book.active = rows[go]
        elif rows.numel() == book.n:
            book.z.copy_(nxt)  # every row active and going on: no index lists
        else:
            book.z[rows] = nxt


def _anderson(fn: RowMap, book: _Book) -> None:
    """Type-II Anderson in difference form, per row, with history ``m`` (``config.anderson_m``).

    With ``g = f(x) - x`` and the last ``h <= m`` differences ``ΔX, ΔG`` of iterates and residuals,
    ``γ = argmin ‖g_k - ΔG γ‖² + λ‖γ‖²`` (normal equations in float64, ``λ = anderson_reg`` × the
    mean squared norm of the ΔG columns) and ``x_{k+1} = x_k + β g_k - (ΔX + β ΔG) γ``.
    A row whose l2 residual exceeds :data:`ANDERSON_RESTART_FACTOR` × its previous one drops its
    history (that step is plain Picard); a singular or non-finite solve falls back to Picard too.
    """
    cfg = book.cfg
    m, beta = cfg.anderson_m, cfg.damping
    n, d = book.z.shape
    dev = book.z.device
    f64 = torch.float64
    xs = torch.zeros(n, m + 1, d, dtype=f64, device=dev)  # iterates, newest last
    gs = torch.zeros(n, m + 1, d, dtype=f64, device=dev)  # residuals f(x) - x
    hist = torch.zeros(n, dtype=torch.long, device=dev)  # valid pairs per row (<= m + 1)
    prev = torch.full((n,), math.inf, dtype=book.z.dtype, device=dev)  # previous l2 residual
    slot = torch.arange(m, device=dev)
    for k in range(1, cfg.max_iterations + 1):
        if book.active.numel() == 0:
            break
        rows, z, f = _eval(fn, book)
        go = book.record(k, rows, z, f)
        rows, z, f = rows[go], z[go], f[go]
        book.active = rows
        if rows.numel() == 0:
            continue
        r_l2 = book.residual["l2"][rows]
        h = torch.where(r_l2 > ANDERSON_RESTART_FACTOR * prev[rows], 0, hist[rows])
        prev[rows] = r_l2
        x_r = torch.roll(xs[rows], -1, dims=1)
        g_r = torch.roll(gs[rows], -1, dims=1)
        g_k = (f - z).to(f64)
        x_r[:, -1], g_r[:, -1] = z.to(f64), g_k
        h = torch.clamp(h + 1, max=m + 1)
        valid = (slot.unsqueeze(0) >= (m + 1 - h).unsqueeze(1)).to(f64)  # [r, m]: difference j usable
        dx = (x_r[:, 1:] - x_r[:, :-1]) * valid.unsqueeze(-1)
        dg = (g_r[:, 1:] - g_r[:, :-1]) * valid.unsqueeze(-1)
        gram = torch.bmm(dg, dg.transpose(1, 2))
        scale = gram.diagonal(dim1=1, dim2=2).sum(-1) / (h - 1).clamp_min(1).to(f64)
        lam = cfg.anderson_reg * scale
        a_mat = gram + torch.diag_embed(lam.unsqueeze(1) * valid + (1.0 - valid))
        rhs = torch.bmm(dg, g_k.unsqueeze(-1)).squeeze(-1)
        gamma, info = torch.linalg.solve_ex(a_mat, rhs)
        step = z.to(f64) + beta * g_k - torch.einsum("rm,rmd->rd", gamma, dx + beta * dg)
        ok = (info == 0) & torch.isfinite(step).all(-1)
        picard = z + beta * (f - z)
        book.z[rows] = torch.where(ok.unsqueeze(1), step.to(z.dtype), picard)
        xs[rows], gs[rows], hist[rows] = x_r, g_r, torch.where(ok, h, 1)
