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
from .rows import RowBook, RowMap, drive


def newton(fn: RowMap, book: RowBook) -> None:
    """Exact-Jacobian Newton per row; see the module doc."""
    f64 = torch.float64

    def step(k: int, rows: torch.Tensor, z: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        jac = jacobian(_at_rows(fn, None if rows.numel() == book.n else rows), z).to(f64)  # [r, D, D]
        a_mat = torch.eye(z.shape[1], dtype=f64, device=z.device) - jac
        delta, solved = solve_rows(a_mat, (f - z).to(f64))
        nxt = z.to(f64) + delta
        ok = solved & torch.isfinite(nxt.sum(-1))
        return torch.where(ok.unsqueeze(1), nxt.to(z.dtype), f).detach()

    drive(lambda z, rows: fn(z, rows).detach(), book, step)


def _at_rows(fn: RowMap, rows: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``z -> fn(z, rows)``."""
    return lambda z: fn(z, rows)
