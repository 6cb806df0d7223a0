"""Anderson, switching each row that stalls to Broyden: Anderson's cheap, fast start for most rows and
full-memory Broyden's reach for the few that Anderson leaves circling.

A row starts in Anderson (:mod:`.anderson`); when its lowest residual has not improved by 1% for
``config.hybrid_window`` iterations it continues from its current iterate with Broyden
(:mod:`.broyden`, ``H = −I`` at the switch). The per-row stop rule and iteration budget are unchanged:
the switch spends no evaluations.
"""

from __future__ import annotations

import torch

from .anderson import _History, _step
from .broyden import BroydenMemory, memory_size
from .rows import RowBook, RowMap


def hybrid(fn: RowMap, book: RowBook) -> None:
    """Anderson, then Broyden for stalled rows; see the module doc."""
    cfg = book.cfg
    m = cfg.anderson_m
    n, d = book.z.shape
    dev = book.z.device
    st = _History(n, m, d, dev)
    slots = torch.arange(m, device=dev)
    ages = [((s - slots) % m).unsqueeze(0) for s in range(m)]
    size = memory_size(book)
    rows, z = book.active, book.z.clone()
    in_b = torch.zeros(n, dtype=torch.bool, device=dev)  # aligned with rows: the row iterates with Broyden
    mem = BroydenMemory(0, d, size, dev)  # the Broyden rows, in the order of in_b.nonzero()
    for k in range(1, cfg.max_iterations + 1):
        if rows.numel() == 0:
            break
        f = fn(z, None if rows.numel() == book.n else rows)
        if f.shape != z.shape:
            raise ValueError(f"the map returned shape {tuple(f.shape)} for input shape {tuple(z.shape)}")
        go = book.record(k, rows, z, f)
        r_l2 = book.last["l2"].to(torch.float64)
        if book.any_stopped:
            mem = mem.select(go[in_b])
            rows, z, f, r_l2, in_b = rows[go], z[go], f[go], r_l2[go], in_b[go]
            st.keep(go)
            book.active = rows
            if rows.numel() == 0:
                break
        stalled = ~in_b & (k - book.state.last_improve[rows] >= cfg.hybrid_window)
        if bool(stalled.any()):
            mem, in_b = _join(mem, in_b, stalled, d, size)
        nxt = _step(st, z, f, r_l2, (k - 1) % m, ages[(k - 1) % m], cfg.anderson_reg, cfg.damping)
        if bool(in_b.any()):
            nxt[in_b] = mem.step(z[in_b], f[in_b])
        z = nxt
    book.z[rows] = z


def _join(
    mem: BroydenMemory, in_b: torch.Tensor, new: torch.Tensor, d: int, size: int
) -> tuple[BroydenMemory, torch.Tensor]:
    """Add the rows ``new`` (fresh memories, ``H = −I``) to the Broyden rows ``in_b`` with memory ``mem``."""
    now = in_b | new
    was = in_b[now]  # among the Broyden rows after the join: already there before
    out = BroydenMemory(int(now.sum()), d, size, in_b.device)
    for name in ("us", "vs", "used", "x", "g", "has_pair"):
        getattr(out, name)[was] = getattr(mem, name)
    return out, now

