"""Picard iteration with damping: ``z <- z + beta (f(z) - z)`` (``beta = SolverConfig.damping``)."""

from __future__ import annotations

from .rows import RowBook, RowMap


def picard(fn: RowMap, book: RowBook) -> None:
    beta = book.cfg.damping
    for k in range(1, book.cfg.max_iterations + 1):
        if book.active.numel() == 0:
            break
        rows, z, f = book.evaluate(fn)
        go = book.record(k, rows, z, f)
        nxt = f if beta == 1.0 else z + beta * (f - z)
        if book.any_stopped:
            book.z[rows[go]] = nxt[go]
            book.active = rows[go]
        elif rows.numel() == book.n:
            book.z.copy_(nxt)  # every row active and going on: no index lists
        else:
            book.z[rows] = nxt
