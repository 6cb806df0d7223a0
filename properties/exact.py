"""Ground truth for family 3, computed here independently of the toolkit's estimators: full Jacobians
of ``c -> model.step(embed(token), c)`` by ``torch.func.jacrev`` (tiny dims only), their σ_max and ρ,
and a geometric rate fitted to a residual trace."""

from __future__ import annotations

import math

import torch
from torch.func import jacrev, vmap


def jacobians(model, ids: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
    """``[N, C, C]``: ``J[n] = d step(e_n, c) / d c`` at ``contexts[n]`` (eval mode, no grad to weights)."""
    with torch.no_grad():
        emb = model.embed(ids)
    return vmap(jacrev(lambda e, c: model.step(e, c), argnums=1))(emb, contexts)


def spectrum(jac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(σ_max [N], ρ [N])`` in float64: largest singular value and largest eigenvalue modulus."""
    j = jac.double()
    return torch.linalg.matrix_norm(j, ord=2), torch.linalg.eigvals(j).abs().amax(-1)


def fitted_rate(trace: torch.Tensor, floor: float = 1e-10, tail: float = 0.5) -> torch.Tensor:
    """Per column of an l2 residual trace ``[K, N]`` (NaN after a stop): ``exp`` of the least-squares
    slope of ``log r_k`` over the last ``tail`` of its entries above ``floor`` (NaN with < 3)."""
    out = []
    for col in trace.double().T:
        r = col[torch.isfinite(col) & (col > floor)]
        r = r[int(math.floor(len(r) * (1 - tail))) :]
        if len(r) < 3:
            out.append(math.nan)
            continue
        k = torch.arange(len(r), dtype=torch.float64)
        y = r.log()
        slope = ((k - k.mean()) * (y - y.mean())).sum() / ((k - k.mean()) ** 2).sum()
        out.append(math.exp(float(slope)))
    return torch.tensor(out, dtype=torch.float64)
