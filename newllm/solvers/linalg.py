"""Batched dense solves that tolerate non-finite systems and avoid a torch 2.13 CPU bug.

With more than one torch thread, torch 2.13's batched CPU LU (``solve_ex``, ``inv``) returns wrong
solutions or raises "Pivots given to lu_solve must all be greater or equal to 1" for systems of about
200 unknowns and more (measured: near-identity ``[64, 256, 256]`` float64, 2 threads; the same systems
solved one at a time, or with one thread, are right). Systems of :data:`LOOP_FROM` unknowns or more
are therefore solved one at a time on the CPU (each costs ``O(m³)``, so the loop is cheap by comparison).
"""

from __future__ import annotations

import torch

#: CPU systems of at least this many unknowns are solved one at a time (see the module doc).
LOOP_FROM = 64


def solve_rows(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``a x = b`` for ``a [r, m, m]``, ``b [r, m]``; returns ``(x [r, m], ok [r])``.

    A system with a non-finite entry is not handed to LAPACK (it is replaced by ``I x = 0``), and
    ``ok`` is False for it and for singular systems; ``x`` is then meaningless.
    """
    finite = torch.isfinite(a.sum((1, 2)) + b.sum(-1))
    if not bool(finite.all()):
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = torch.where(finite[:, None, None], a, eye)
        b = torch.where(finite[:, None], b, 0.0)
    if a.device.type == "cpu" and a.shape[-1] >= LOOP_FROM and a.shape[0] > 1 and torch.get_num_threads() > 1:
        parts = [torch.linalg.solve_ex(a[i], b[i].unsqueeze(-1)) for i in range(a.shape[0])]
        x = torch.stack([p[0] for p in parts])
        info = torch.stack([p[1] for p in parts])
    else:
        x, info = torch.linalg.solve_ex(a, b.unsqueeze(-1))
    return x.squeeze(-1), finite & (info == 0)
