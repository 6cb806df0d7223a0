"""Broyden's ("good") method on ``g(x) = f(x) − x``, per row, with a limited memory of rank-one updates.

The inverse Jacobian of ``g`` is approximated as ``H = −I + Σ u_i v_iᵀ`` (starting from ``−I``, so the
first step is a Picard step); each step is ``x ← x − H g(x)``, after which ``H`` gets the rank-one update
``u = (Δx − H Δg) / (vᵀ Δg)``, ``vᵀ = Δxᵀ H`` that makes ``H Δg = Δx`` hold. A row keeps at most
``broyden_memory`` updates (default: as many as iterations); when its memory is full it restarts
from ``H = −I`` (measured better than overwriting the oldest update). As in :mod:`.anderson` the
state is held for the active rows only and compacted when rows stop; each row stops on its own (the
stop rule), not when the whole batch does. A non-finite step falls back to Picard.
"""

from __future__ import annotations

import torch

from .rows import RowBook, RowMap, drive


class BroydenMemory:
    """Broyden state of ``r`` rows (float64): ``us [r, D, L]``, ``vs [r, L, D]`` (unused slots zero),
    the number of updates ``used [r]``, the last pair ``(x, g) [r, D]`` and whether it exists."""

    def __init__(self, n: int, d: int, size: int, device: torch.device):
        f64 = torch.float64
        self.us = torch.zeros(n, d, size, dtype=f64, device=device)
        self.vs = torch.zeros(n, size, d, dtype=f64, device=device)
        self.used = torch.zeros(n, dtype=torch.long, device=device)
        self.x = torch.zeros(n, d, dtype=f64, device=device)
        self.g = torch.zeros(n, d, dtype=f64, device=device)
        self.has_pair = torch.zeros(n, dtype=torch.bool, device=device)

    def select(self, keep: torch.Tensor) -> BroydenMemory:
        """The memory of the rows ``keep`` (a bool mask or indices), as a new object."""
        out = BroydenMemory.__new__(BroydenMemory)
        for name in ("us", "vs", "used", "x", "g", "has_pair"):
            setattr(out, name, getattr(self, name)[keep])
        return out

    def _top(self) -> int:
        return int(self.used.max()) if self.used.numel() else 0

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` per row: ``−v + U (Vᵀ v)``."""
        top = self._top()
        if top == 0:
            return -v
        return -v + torch.bmm(self.us[:, :, :top], torch.bmm(self.vs[:, :top], v.unsqueeze(-1))).squeeze(-1)

    def apply_t(self, v: torch.Tensor) -> torch.Tensor:
        """``vᵀ H`` per row: ``−v + (vᵀ U) Vᵀ``."""
        top = self._top()
        if top == 0:
            return -v
        return -v + torch.bmm(torch.bmm(v.unsqueeze(1), self.us[:, :, :top]), self.vs[:, :top]).squeeze(1)

    def step(self, z: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Update ``H`` with the new pair ``(z, f(z) − z)`` and return the next iterate ``[r, D]``."""
        f64 = torch.float64
        x, g = z.to(f64), (f - z).to(f64)
        if bool(self.has_pair.any()):
            full = self.used >= self.us.shape[2]
            if bool(full.any()):  # restart from H = -I
                self.us[full], self.vs[full], self.used[full] = 0.0, 0.0, 0
            dx, dg = x - self.x, g - self.g
            vt = self.apply_t(dx)
            den = (vt * dg).sum(-1, keepdim=True)
            u = (dx - self.apply(dg)) / den
            good = self.has_pair & torch.isfinite(u).all(-1) & (den.squeeze(-1) != 0)
            at = torch.arange(x.shape[0], device=x.device)
            self.us[at, :, self.used] = torch.where(good.unsqueeze(1), u, 0.0)
            self.vs[at, self.used] = torch.where(good.unsqueeze(1), vt, 0.0)
            self.used = self.used + good
        self.x, self.g, self.has_pair = x, g, torch.ones_like(self.has_pair)
        nxt = x - self.apply(g)
        ok = torch.isfinite(nxt.sum(-1))  # a non-finite entry makes the sum non-finite
        if bool(ok.all()):
            return nxt.to(z.dtype)
        return torch.where(ok.unsqueeze(1), nxt.to(z.dtype), f)


def memory_size(book: RowBook) -> int:
    """Updates kept per row: ``broyden_memory`` (None: every iteration's), at most ``max_iterations``."""
    size = book.cfg.broyden_memory
    return book.cfg.max_iterations if size is None else min(size, book.cfg.max_iterations)


def broyden(fn: RowMap, book: RowBook) -> None:
    """Limited-memory good Broyden per row; see the module doc."""
    n, d = book.z.shape
    mem = BroydenMemory(n, d, memory_size(book), book.z.device)

    def keep(go: torch.Tensor) -> None:
        nonlocal mem
        mem = mem.select(go)

    drive(fn, book, lambda k, rows, z, f: mem.step(z, f), keep)
