"""Type-II Anderson acceleration in difference form, per row, with restarts and a Picard fallback."""

from __future__ import annotations

import math

import torch

from .rows import RowBook, RowMap

#: Anderson drops a row's history when its l2 residual exceeds this multiple of the previous one.
#: 1.0 (restart on any increase) measured best on the untrained full-size models (bench/test_anderson.py).
ANDERSON_RESTART_FACTOR = 1.0


def anderson(fn: RowMap, book: RowBook) -> None:
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
        rows, z, f = book.evaluate(fn)
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
