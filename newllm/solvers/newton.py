"""Newton's method on ``g(z) = f(z) − z`` with the exact Jacobian, per row: for refining a fixed point.

Each iteration evaluates ``f`` once (one evaluation) and builds every active row's Jacobian with ``D``
batched VJPs (:func:`torch.func.vjp` + ``vmap``; these are not counted as evaluations), then solves
``(I − J) δ = f(z) − z`` in float64 and steps ``z ← z + δ``. Near a fixed point where ``I − J`` is
invertible the residual falls quadratically, which is what refinement to ``1e-10`` and
certification want; far from one it can jump anywhere (no line search), so start it close. A
singular system or a non-finite step falls back to a Picard step. ``fn`` must be differentiable in
``z`` with :mod:`torch.func` (the model's update is) and rows must not interact. Cost: ``O(D)``
backward passes and an ``O(D³)`` solve per row and iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import vjp, vmap

from .linalg import solve_rows
from .rows import RowBook, RowMap


def newton(fn: RowMap, book: RowBook) -> None:
    """Exact-Jacobian Newton per row; see the module doc."""
    n, d = book.z.shape
    f64 = torch.float64
    rows, z = book.active, book.z.clone()
    for k in range(1, book.cfg.max_iterations + 1):
        if rows.numel() == 0:
            break
        sub = None if rows.numel() == book.n else rows
        f, pull = _pullback(fn, z, sub)
        if f.shape != z.shape:
            raise ValueError(f"the map returned shape {tuple(f.shape)} for input shape {tuple(z.shape)}")
        go = book.record(k, rows, z, f)
        if book.any_stopped:
            rows, z, f = rows[go], z[go], f[go]
            book.active = rows
            if rows.numel() == 0:
                break
            sub = None if rows.numel() == book.n else rows
            _, pull = _pullback(fn, z, sub)  # the pullback of the remaining rows
        basis = torch.eye(d, dtype=z.dtype, device=z.device).unsqueeze(1).expand(d, rows.numel(), d)
        jac = vmap(pull)(basis)[0].permute(1, 0, 2).to(f64)  # [r, D, D]
        a_mat = torch.eye(d, dtype=f64, device=z.device) - jac
        delta, solved = solve_rows(a_mat, (f - z).to(f64))
        step = z.to(f64) + delta
        ok = solved & torch.isfinite(step.sum(-1))
        z = torch.where(ok.unsqueeze(1), step.to(z.dtype), f).detach()
    book.z[rows] = z


def _pullback(fn: RowMap, z: torch.Tensor, rows: torch.Tensor | None) -> tuple[torch.Tensor, Callable]:
    """``(fn(z, rows) [r, D] detached, its VJP function)``."""
    out = vjp(lambda x: fn(x, rows), z)
    return out[0].detach(), out[1]
