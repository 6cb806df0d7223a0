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
from .rows import RowBook, RowMap, drive


def hybrid(fn: RowMap, book: RowBook) -> None:
    """Anderson, then Broyden for stalled rows; see the module doc."""
    cfg = book.cfg
    n, d = book.z.shape
    dev = book.z.device
    st = _History(n, cfg.anderson_m, d, dev)
    size = memory_size(book)
    in_b = torch.zeros(n, dtype=torch.bool, device=dev)  # aligned with rows: the row iterates with Broyden
    mem = BroydenMemory(0, d, size, dev)  # the Broyden rows, in the order of in_b.nonzero()

    def keep(go: torch.Tensor) -> None:
        nonlocal mem, in_b
        mem, in_b = mem.select(go[in_b]), in_b[go]
        st.keep(go)

    def step(k: int, rows: torch.Tensor, z: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        nonlocal mem, in_b
        stalled = ~in_b & (k - book.state.last_improve[rows] >= cfg.hybrid_window)
        if bool(stalled.any()):
            mem, in_b = _join(mem, in_b, stalled, d, size)
        nxt = _step(st, k, z, f, book.last["l2"].to(torch.float64), cfg.anderson_reg, cfg.damping)
        if bool(in_b.any()):
            nxt[in_b] = mem.step(z[in_b], f[in_b])
        return nxt

    drive(fn, book, step, keep)


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
