"""Exact values from the full Jacobian: the ground truth the cheap estimators are tested against.

``J_n = d f_n(z_n) / d z_n`` is ``[D, D]`` per row. :func:`jacobian` builds all of them with one
batched VJP per basis vector (``torch.func.vjp`` + ``vmap``: ``D`` backward passes over ``N`` rows),
then σ_max is the largest singular value (``torch.linalg.matrix_norm(ord=2)``) and ρ the largest
eigenvalue modulus (``torch.linalg.eigvals``), both in float64. Cost ``O(N D^3)``; at D = 256 this
is about 10-30 ms per token on a CPU, affordable for hundreds of tokens.
"""

from __future__ import annotations

import torch
from torch.func import vjp, vmap

from .estimate import Estimate
from .maps import PointMap

#: Rows of the vmapped VJP evaluated at once (``chunk * N``), bounding memory.
_ROWS_PER_CHUNK = 16_384


def jacobian(fn: PointMap, z: torch.Tensor) -> torch.Tensor:
    """Per-row Jacobians ``[N, D, D]`` of ``fn`` at ``z [N, D]``: ``J[n, i, j] = d f(z)[n, i] / d z[n, j]``."""
    _check_points(z)
    n, d = z.shape
    with torch.no_grad():
        pull = vjp(fn, z)[1]
        basis = torch.eye(d, dtype=z.dtype, device=z.device).unsqueeze(1).expand(d, n, d)
        rows = vmap(pull, chunk_size=max(1, _ROWS_PER_CHUNK // n))(basis)[0]  # [D_out, N, D_in]
    return rows.permute(1, 0, 2).contiguous()


def spectrum(jac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(σ_max [N], ρ [N])`` of Jacobians ``[N, D, D]``, in float64."""
    j = jac.to(torch.float64)
    sigma = torch.linalg.matrix_norm(j, ord=2)
    rho = torch.linalg.eigvals(j).abs().amax(dim=-1)
    return sigma, rho


def exact(fn: PointMap, z: torch.Tensor) -> dict[str, Estimate]:
    """Exact ``sigma_max`` (spectral norm, the local Lipschitz constant in l2) and ``spectral_radius``
    of each row's Jacobian at ``z [N, D]``, from one full-Jacobian computation."""
    sigma, rho = spectrum(jacobian(fn, z))
    return {
        "sigma_max": Estimate("sigma_max", "exact", "svd of the full Jacobian", sigma),
        "spectral_radius": Estimate("spectral_radius", "exact", "eigvals of the full Jacobian", rho),
    }


def _check_points(z: torch.Tensor) -> None:
    if z.dim() != 2:
        raise ValueError(f"expected points [N, D], got shape {tuple(z.shape)}")
    if not z.dtype.is_floating_point:
        raise ValueError(f"points must be floating point, got dtype {z.dtype}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("points hold NaN or inf values")
