"""Pair ratio: ``max ‖f(a) − f(b)‖ / ‖a − b‖`` over sampled pairs, a lower bound on the Lipschitz constant.

Any pair gives a valid lower bound on the global l2 Lipschitz constant of the map (and on the
largest σ_max(J) along the segment between the points); the max over many pairs near and far, and
optionally sharpened by gradient ascent on the ratio, tightens it. For a linear map it is at most
σ_max and approaches it under ascent.
"""

from __future__ import annotations

import torch
from torch.func import grad

from .estimate import Estimate
from .jacobian import _check_points
from .maps import PointMap

#: Pair distances as fractions of each row's scale (``‖center‖``): near (local slope) to far (global).
DEFAULT_RADII = (1e-3, 1e-2, 1e-1, 1.0)


def _ratio(fn: PointMap, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``‖f(a) − f(b)‖ / ‖a − b‖`` for points ``a, b [N, P, D]`` -> ``[N, P]`` (one call of ``fn``)."""
    f = fn(torch.cat([a, b], dim=1))
    p = a.shape[1]
    num = torch.linalg.vector_norm(f[:, :p] - f[:, p:], dim=-1)
    return num / torch.linalg.vector_norm(a - b, dim=-1)


def pair_ratio(
    fn: PointMap,
    center: torch.Tensor,
    *,
    pairs: int = 16,
    radii: tuple[float, ...] = DEFAULT_RADII,
    scale: torch.Tensor | float | None = None,
    ascent_steps: int = 0,
    step_size: float = 0.1,
    generator: torch.Generator | None = None,
    seed: int = 0,
) -> Estimate:
    """Largest sampled ratio per row around ``center [N, D]`` (kind ``lower_bound``).

    For every radius ``r`` in ``radii``, ``pairs`` pairs ``a = c + r s u₁``, ``b = a + r s u₂``
    (``u`` random unit vectors from ``generator``/``seed``, ``s = scale``, default ``‖c‖`` per row,
    1 where ``c = 0``). ``ascent_steps > 0`` then moves every pair along the normalised gradient of
    ``log ratio`` (step ``step_size · ‖a − b‖``, shrinking by 0.9 per step). Every evaluated pair
    counts, so more steps never lower the bound. ``details["by_radius"]``: best ratio per radius
    before ascent.
    """
    _check_points(center)
    if pairs < 1 or not radii or any(not (r > 0) for r in radii):
        raise ValueError(f"need pairs >= 1 and positive radii, got pairs={pairs}, radii={radii}")
    if ascent_steps < 0:
        raise ValueError(f"ascent_steps must be >= 0, got {ascent_steps}")
    n, d = center.shape
    dt, dev = center.dtype, center.device
    if scale is None:
        s = torch.linalg.vector_norm(center, dim=-1)
        s = torch.where(s > 0, s, torch.ones_like(s))
    else:
        s = torch.as_tensor(scale, dtype=dt, device=dev).expand(n)
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    r = torch.tensor(radii, dtype=dt, device=dev).repeat_interleave(pairs)  # [R P]
    step = (r.unsqueeze(0) * s.unsqueeze(1)).unsqueeze(-1)  # [N, R P, 1]

    def unit() -> torch.Tensor:
        u = torch.randn(n, r.numel(), d, generator=g, dtype=torch.float64, device=g.device)
        return (u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)).to(device=dev, dtype=dt)

    with torch.no_grad():
        a = center.unsqueeze(1) + step * unit()
        b = a + step * unit()
        ratio = _ratio(fn, a, b)  # [N, R P]
    by_radius = ratio.reshape(n, len(radii), pairs).amax(dim=-1)
    best = ratio.amax(dim=-1)

    def objective(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _ratio(fn, a, b).clamp_min(torch.finfo(dt).tiny).log().sum()

    gradient = grad(objective, argnums=(0, 1))
    eta = step_size
    for _ in range(ascent_steps):
        ga, gb = gradient(a, b)
        norm = (ga.pow(2).sum(-1, keepdim=True) + gb.pow(2).sum(-1, keepdim=True)).sqrt()
        dist = torch.linalg.vector_norm(a - b, dim=-1, keepdim=True)
        factor = eta * dist / norm.clamp_min(torch.finfo(dt).tiny)
        a, b = (a + factor * ga).detach(), (b + factor * gb).detach()
        with torch.no_grad():
            best = torch.fmax(best, _ratio(fn, a, b).amax(dim=-1))
        eta *= 0.9
    return Estimate(
        "pair_ratio",
        "lower_bound",
        f"max over {pairs} pairs x {len(radii)} radii, {ascent_steps} ascent steps",
        best,
        {"radii": list(radii), "pairs": pairs, "ascent_steps": ascent_steps, "by_radius": by_radius.cpu()},
    )
