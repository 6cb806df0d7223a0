"""Newton's method on ``g(z) = f(z) − z`` with the exact Jacobian, per row: for refining a fixed point.

Each iteration evaluates ``f`` once (one evaluation) and builds every active row's Jacobian with ``D``
batched VJPs (:func:`newllm.contraction.jacobian`; not counted as evaluations), then solves
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

from ..contraction.jacobian import jacobian
from .linalg import solve_rows
from .rows import RowBook, RowMap


def newton(fn: RowMap, book: RowBook) -> None:
    """Exact-Jacobian Newton per row; see the module doc."""
    f64 = torch.float64
    rows, z = book.active, book.z.clone()
    for k in range(1, book.cfg.max_iterations + 1):
        if rows.numel() == 0:
            break
        sub = None if rows.numel() == book.n else rows
        f = fn(z, sub).detach()
        if f.shape != z.shape:
            raise ValueError(f"the map returned shape {tuple(f.shape)} for input shape {tuple(z.shape)}")
        go = book.record(k, rows, z, f)
        if book.any_stopped:
            rows, z, f = rows[go], z[go], f[go]
            book.active = rows
            if rows.numel() == 0:
                break
            sub = None if rows.numel() == book.n else rows
        jac = jacobian(_at_rows(fn, sub), z).to(f64)  # [r, D, D]
        a_mat = torch.eye(z.shape[1], dtype=f64, device=z.device) - jac
        delta, solved = solve_rows(a_mat, (f - z).to(f64))
        step = z.to(f64) + delta
        ok = solved & torch.isfinite(step.sum(-1))
        z = torch.where(ok.unsqueeze(1), step.to(z.dtype), f).detach()
    book.z[rows] = z


def _at_rows(fn: RowMap, rows: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``z -> fn(z, rows)``."""
    return lambda z: fn(z, rows)
