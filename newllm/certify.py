"""A posteriori error bounds: how far can a context ``c`` be from a true fixed point of ``f``?

A small residual is not a small error: with ``σ_min(I − J)`` near 0 a context whose residual passes a
threshold can sit far from the fixed point. For each token, with the residual ``r = f(c) − c`` (l2),
the Jacobian ``J = ∂f/∂c`` at ``c`` and ``γ`` a Lipschitz constant of ``J`` near ``c``:

* **contraction** (Banach's theorem on a ball): if ``k = σ_max(J) < 1`` and ``(1 − k)² ≥ 4γ‖r‖``, then
  ``f`` maps the ball ``B(c, R)`` into itself with Lipschitz constant ``k + γR < 1`` for
  ``R = 2‖r‖ / ((1 − k) + sqrt((1 − k)² − 4γ‖r‖))`` (``= ‖r‖ / (1 − k)`` when ``γ = 0``), so exactly one
  fixed point lies in it and ``‖c − c*‖ ≤ R``;
* **linearised** (Newton–Kantorovich for ``F(c) = c − f(c)``): with ``β = 1 / σ_min(I − J)``, the Newton
  step ``δ = (I − J)⁻¹ r``, ``η = ‖δ‖`` and ``h = βγη ≤ 1/2``, a fixed point lies within
  ``2η / (1 + sqrt(1 − 2h))`` (between ``η`` and ``2η``) of ``c``;
* **none**: neither applies (``σ_min`` too small for the residual, ``h > 1/2``): the bound is ``inf``.

A token's bound is the smaller of the ones that apply (both are upper bounds); its kind names the
strongest certificate that holds: ``contraction`` (which also proves the fixed point unique in the ball
and that iteration converges to it) before ``linearised``.
``γ`` is not known exactly: it is estimated as :data:`GAMMA_SAFETY` × the secant ``‖J(c + δ) − J(c)‖₂ / η``
along the Newton step (the norm by power iteration); the bounds are exact given ``γ`` (and for affine
maps, where ``γ = 0``), so they are as trustworthy as that estimate: measured, not proven.
Everything runs in float64 on a float64 twin of the update (the same weights), with exact Jacobians
(``D`` VJPs per token, :func:`newllm.contraction.jacobian`), :data:`CHUNK` tokens at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from .contraction.jacobian import jacobian
from .model import CVFPModel
from .result import BoundKind, FixedPointResult
from .solvers.linalg import solve_rows
from .solvers.rows import RowMap

#: The secant estimate of J's Lipschitz constant is multiplied by this (it can undershoot the sup on the ball).
GAMMA_SAFETY = 2.0
#: Tokens per chunk: the Jacobians of a chunk take ``CHUNK * D * D`` float64 entries (34 MB at D = 256).
CHUNK = 64


@dataclass
class Certificate:
    """Per-token certification numbers, each ``[N]`` float64 (``kind`` int8 :class:`BoundKind` codes).

    ``bound``: upper bound on ``‖c − c*‖₂`` (inf when none); ``residual``: ``‖f(c) − c‖₂``;
    ``sigma_max``: ``σ_max(J)``; ``sigma_min``: ``σ_min(I − J)``; ``newton_step``: ``η``;
    ``gamma``: the (safety-scaled) Lipschitz estimate of ``J``; ``kantorovich_h``: ``βγη``.
    """

    bound: torch.Tensor
    kind: torch.Tensor
    residual: torch.Tensor
    sigma_max: torch.Tensor
    sigma_min: torch.Tensor
    newton_step: torch.Tensor
    gamma: torch.Tensor
    kantorovich_h: torch.Tensor

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready per-token lists (inf/NaN become null through :func:`newllm.runs.jsonio.dumps`)."""
        out: dict[str, Any] = {k: getattr(self, k).tolist() for k in self.__dataclass_fields__ if k != "kind"}
        out["kind"] = [BoundKind(int(k)).label for k in self.kind]
        return out


def certify_map(fn: RowMap, c: torch.Tensor, *, chunk: int = CHUNK) -> Certificate:
    """Error bounds for the contexts ``c [N, D]`` of the row maps ``fn(z [n, D], rows [n]) -> [n, D]``
    (row ``i`` of ``c`` is a point of map ``i``; rows must not interact). Computed in ``c``'s dtype:
    pass float64 contexts and a float64 map for meaningful bounds. See the module doc."""
    if c.dim() != 2:
        raise ValueError(f"contexts must be [N, D], got shape {tuple(c.shape)}")
    parts = [_certify_rows(fn, c, torch.arange(i, min(i + chunk, c.shape[0]), device=c.device))
             for i in range(0, c.shape[0], chunk)]
    return Certificate(**{k: torch.cat([getattr(p, k) for p in parts]) for k in Certificate.__dataclass_fields__})


def _certify_rows(fn: RowMap, c_all: torch.Tensor, rows: torch.Tensor) -> Certificate:
    f64 = torch.float64
    d = c_all.shape[1]
    c = c_all[rows]
    finite = torch.isfinite(c).all(-1)
    c = torch.where(finite.unsqueeze(1), c, 0.0)

    def row_map(z: torch.Tensor) -> torch.Tensor:
        return fn(z, rows)

    with torch.no_grad():
        r = (row_map(c) - c).to(f64)
        jac = jacobian(row_map, c).to(f64)
    eye = torch.eye(d, dtype=f64, device=c.device)
    finite = finite & torch.isfinite(jac.sum((1, 2)) + r.sum(-1))
    jac = torch.where(finite[:, None, None], jac, 0.0)
    r = torch.where(finite[:, None], r, 0.0)
    sigma_max = torch.linalg.svdvals(jac)[:, 0]
    a_mat = eye - jac
    sigma_min = torch.linalg.svdvals(a_mat)[:, -1]
    delta, solved = solve_rows(a_mat, r)
    eta = torch.linalg.vector_norm(delta, dim=-1)
    with torch.no_grad():
        jac2 = jacobian(row_map, c + delta.to(c.dtype)).to(f64)
    jump = torch.where(finite[:, None, None], jac2 - jac, 0.0)
    gamma = GAMMA_SAFETY * _top_singular(jump) / eta.clamp_min(torch.finfo(f64).tiny)
    gamma = torch.where(eta > 0, gamma, 0.0)
    finite = finite & torch.isfinite(gamma)
    r_norm = torch.linalg.vector_norm(r, dim=-1)
    bound, kind, h = _bounds(r_norm, sigma_max, sigma_min, eta, gamma)
    usable = finite & solved & torch.isfinite(bound)
    bound = torch.where(usable, bound, math.inf)
    kind = torch.where(usable, kind, int(BoundKind.NONE)).to(torch.int8)
    return Certificate(bound, kind, r_norm, sigma_max, sigma_min, eta, gamma, h)


def _bounds(
    r: torch.Tensor, k: torch.Tensor, sigma_min: torch.Tensor, eta: torch.Tensor, gamma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(bound, kind, h)`` per token from ``‖r‖``, ``k = σ_max(J)``, ``σ_min(I − J)``, ``η``, ``γ`` (module doc)."""
    inf = torch.full_like(r, math.inf)
    gap = 1.0 - k
    disc = gap * gap - 4.0 * gamma * r
    contraction = torch.where(
        (gap > 0) & (disc >= 0), 2.0 * r / (gap + disc.clamp_min(0).sqrt()).clamp_min(1e-300), inf
    )
    h = gamma * eta / sigma_min.clamp_min(1e-300)
    linearised = torch.where(h <= 0.5, 2.0 * eta / (1.0 + (1.0 - 2.0 * h).clamp_min(0).sqrt()), inf)
    bound = torch.minimum(linearised, contraction)
    kind = torch.where(
        torch.isfinite(contraction),
        int(BoundKind.CONTRACTION),
        torch.where(torch.isfinite(linearised), int(BoundKind.LINEARISED), int(BoundKind.NONE)),
    )
    return bound, kind, h


def _top_singular(m: torch.Tensor, steps: int = 12) -> torch.Tensor:
    """``‖m‖₂`` per matrix of ``m [N, D, D]`` by power iteration on ``mᵀm`` (a lower estimate; O(D²) a step)."""
    v = torch.ones(m.shape[0], m.shape[2], dtype=m.dtype, device=m.device) / m.shape[2] ** 0.5
    top = torch.zeros(m.shape[0], dtype=m.dtype, device=m.device)
    for _ in range(steps):
        w = torch.bmm(m, v.unsqueeze(-1)).squeeze(-1)
        top = torch.linalg.vector_norm(w, dim=-1)
        u = torch.bmm(m.transpose(1, 2), w.unsqueeze(-1)).squeeze(-1)
        v = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(1e-300)
    return top


def precise_twin(model: CVFPModel) -> CVFPModel:
    """A float64 copy of ``model``'s update (its blocks; a 2-row embedding), in the same mode."""
    twin = CVFPModel(replace(model.config, vocab_size=2)).to(torch.float64)
    twin.blocks.load_state_dict(model.blocks.state_dict())
    return twin.to(model.token_embedding.weight.device).train(model.training)


def certify(
    model: CVFPModel,
    token_emb: torch.Tensor,
    result: FixedPointResult,
    *,
    masks: list[torch.Tensor] | None = None,
) -> FixedPointResult:
    """``result`` with ``error_bound``/``error_bound_kind`` set and the :class:`Certificate` in
    ``extra["certificate"]``, for the maps ``c -> model.step(token_emb, c, masks=masks)``
    (``token_emb [*S, E]``, ``masks`` each ``[*S, H]``, as in the solve), evaluated in float64."""
    shape = tuple(result.status.shape)
    twin = precise_twin(model)
    e = token_emb.detach().reshape(-1, token_emb.shape[-1]).to(torch.float64)
    held = None if masks is None else [m.reshape(-1, m.shape[-1]).to(torch.float64) for m in masks]

    def fn(z: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        if rows is None:
            return twin.step(e, z, masks=held)
        return twin.step(e[rows], z, masks=None if held is None else [m[rows] for m in held])

    cert = certify_map(fn, result.context.reshape(-1, result.context.shape[-1]).to(torch.float64))
    result.error_bound = cert.bound.reshape(shape)
    result.error_bound_kind = cert.kind.reshape(shape)
    result.extra["certificate"] = cert
    return result
