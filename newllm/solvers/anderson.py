"""Type-II Anderson acceleration in difference form, per row, with restarts and a Picard fallback.

Per-step cost is kept close to Picard's: the state (ring buffers of the last ``m`` differences, their
Gram matrix, the last iterate/residual pair) is held for the active rows only and compacted when rows
stop, so a step that stops no row gathers and scatters nothing; the Gram matrix gains one row/column
per step instead of being recomputed; the dot products and the ``m x m`` systems of all rows are
batched (one ``bmm`` for the new Gram column and the right-hand side, one batched solve, one ``bmm``
for the step), with no Python work per row.
"""

from __future__ import annotations

import math

import torch

from .linalg import solve_rows
from .rows import RowBook, RowMap, drive

#: Anderson drops a row's history when its l2 residual exceeds this multiple of the previous one.
#: 1.0 (restart on any increase) measured best on the untrained full-size models (bench/test_anderson.py).
ANDERSON_RESTART_FACTOR = 1.0


class _History:
    """Anderson state of ``r`` active rows (float64): ``dg_t [r, D, m]``, a ring of residual differences
    ``Δg`` (stored transposed for the batched dot products); ``mix [r, m, D]``, the matching ring of
    ``Δx + β Δg`` (what the step combines); their Gram matrix ``gram [r, m, m]``; the number of
    usable differences ``count [r]``; the last pair ``(x, g) [r, D]``; the last l2 residual ``[r]``."""

    def __init__(self, n: int, m: int, d: int, device: torch.device):
        f64 = torch.float64
        self.dg_t = torch.zeros(n, d, m, dtype=f64, device=device)
        self.mix = torch.zeros(n, m, d, dtype=f64, device=device)
        self.gram = torch.zeros(n, m, m, dtype=f64, device=device)
        self.count = torch.zeros(n, dtype=torch.long, device=device)
        self.x = torch.zeros(n, d, dtype=f64, device=device)
        self.g = torch.zeros(n, d, dtype=f64, device=device)
        self.prev_l2 = torch.full((n,), math.inf, dtype=f64, device=device)
        slots = torch.arange(m, device=device)
        #: ``ages[s] [1, m]``: steps since slot ``j`` was written, when slot ``s`` is written now.
        self.ages = [((s - slots) % m).unsqueeze(0) for s in range(m)]
        #: Whether ``(x, g)`` holds a pair (False only before the first step).
        self.started = False

    def keep(self, go: torch.Tensor) -> None:
        """Drop the rows where ``go`` is False (rows that stopped)."""
        for name in ("dg_t", "mix", "gram", "count", "x", "g", "prev_l2"):
            setattr(self, name, getattr(self, name)[go])


def anderson(fn: RowMap, book: RowBook) -> None:
    """Type-II Anderson in difference form, per row, with history ``m`` (``config.anderson_m``).

    With ``g = f(x) - x`` and the last ``h <= m`` differences ``ΔX, ΔG`` of iterates and residuals,
    ``γ = argmin ‖g_k - ΔG γ‖² + λ‖γ‖²`` (normal equations in float64, ``λ = anderson_reg`` × the
    mean squared norm of the ΔG columns) and ``x_{k+1} = x_k + β g_k - (ΔX + β ΔG) γ``.
    A row whose l2 residual exceeds :data:`ANDERSON_RESTART_FACTOR` × its previous one drops its
    history (that step is plain Picard); a singular or non-finite solve falls back to Picard too.
    """
    cfg = book.cfg
    n, d = book.z.shape
    st = _History(n, cfg.anderson_m, d, book.z.device)

    def step(k: int, rows: torch.Tensor, z: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return _step(st, k, z, f, book.last["l2"].to(torch.float64), cfg.anderson_reg, cfg.damping)

    drive(fn, book, step, st.keep)


def _step(
    st: _History,
    k: int,
    z: torch.Tensor,
    f: torch.Tensor,
    r_l2: torch.Tensor,
    reg: float,
    beta: float,
) -> torch.Tensor:
    """The next iterate ``[r, D]`` of every active row after iteration ``k``; writes the new difference
    into ring slot ``(k - 1) % m`` and updates ``st`` in place."""
    slot = (k - 1) % len(st.ages)
    age = st.ages[slot]
    f64 = torch.float64
    x, g = z.to(f64), (f - z).to(f64)
    usable = r_l2 <= ANDERSON_RESTART_FACTOR * st.prev_l2  # no restart
    st.prev_l2 = r_l2
    ddg = g - st.g
    st.dg_t[:, :, slot] = ddg
    st.mix[:, slot] = (x - st.x).add_(ddg, alpha=beta)
    dots = torch.bmm(torch.stack([ddg, g], 1), st.dg_t)  # [r, 2, m]: ΔGᵀ Δg_new (new Gram column), ΔGᵀ g
    st.gram[:, slot], st.gram[:, :, slot] = dots[:, 0], dots[:, 0]
    count = (st.count + 1).clamp_(max=age.shape[1]) * usable if st.started else st.count
    valid = (age < count.unsqueeze(1)).to(f64)  # [r, m]: slot j holds a usable difference
    gram = st.gram * (valid.unsqueeze(2) * valid.unsqueeze(1))
    lam = gram.diagonal(dim1=1, dim2=2).sum(-1) * reg / count.clamp_min(1)
    a_mat = gram + torch.diag_embed(valid * lam.unsqueeze(1) + (1.0 - valid))
    gamma, solved = solve_rows(a_mat, dots[:, 1] * valid)
    gamma = gamma.contiguous()  # solve_ex returns it column-major, which sends bmm down a slow path
    step = x + beta * g - torch.bmm(gamma.unsqueeze(1), st.mix).squeeze(1)
    ok = solved & torch.isfinite(step.sum(-1))  # a non-finite entry makes the sum non-finite
    st.x, st.g, st.started = x, g, True
    st.count = count * ok
    if bool(ok.all()):
        return step.to(z.dtype)
    return torch.where(ok.unsqueeze(1), step.to(z.dtype), z + beta * (f - z))
