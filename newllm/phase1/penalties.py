"""The extra Phase 1 loss terms and constraints of the recipes (``newllm.matrix.RECIPES``).

Each term is a function of one training iteration's ``new = f(c_in) [n, C]`` (and ``c_in``, which
requires grad for the Jacobian terms); :func:`recipe_loss` adds the weighted ones (Phase1Config).

==========================  ==================================================================
:func:`hutchinson_jacobian`  ``||J||_F^2 / D`` per token, one Gaussian probe (Bai et al., 2021)
:func:`sigma_hinge`          ``relu(σ̂ - margin)^2`` per token, σ̂ from power iteration on ``JᵀJ``
:func:`variance_loss`        ``mean_j relu(1 - std_j)`` over tokens (VICReg's variance term)
:func:`covariance_loss`      ``sum_{i≠j} cov_ij^2 / C`` over tokens (VICReg's covariance term)
:func:`project_spectral`     caps σ_max of every weight block acting on ``c`` at ``scale`` (in place)
==========================  ==================================================================
"""

from __future__ import annotations

import torch

from ..model import CVFPModel


def hutchinson_jacobian(new: torch.Tensor, c_in: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-token unbiased estimate of ``||J||_F^2 / D`` with ``J = d new / d c_in``: ``[n]``.

    One Gaussian probe ``v``: ``E ||v^T J||^2 = ||J||_F^2``. Differentiable (create_graph).
    """
    v = torch.randn(new.shape, generator=generator, device=new.device, dtype=new.dtype)
    (vj,) = torch.autograd.grad(new, c_in, v, create_graph=True)
    return vj.pow(2).sum(-1) / new.shape[-1]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


def sigma_estimate(
    new: torch.Tensor, c_in: torch.Tensor, generator: torch.Generator, iterations: int
) -> torch.Tensor:
    """Per-token σ̂ ``[n]`` of ``J = d new / d c_in`` (rows independent), differentiable.

    ``iterations`` steps of power iteration on ``JᵀJ`` from a Gaussian start (``J v`` by the
    double-backward trick, ``Jᵀ u`` by one VJP; no graph kept), then ``σ̂ = ||Jᵀ u||`` for the
    unit ``u ∝ J v`` (a lower bound of σ_max that is tight once the iteration has converged),
    with create_graph so the penalty trains the weights.
    """
    w0 = torch.zeros_like(new, requires_grad=True)
    (jt,) = torch.autograd.grad(new, c_in, w0, create_graph=True)  # Jᵀ w0, linear in w0

    def jv(v: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(jt, w0, v, retain_graph=True)[0]

    v = _unit(torch.randn(new.shape, generator=generator, device=new.device, dtype=new.dtype))
    for _ in range(iterations):
        u = _unit(jv(v))
        v = _unit(torch.autograd.grad(new, c_in, u, retain_graph=True)[0])
    u = _unit(jv(v)).detach()
    (jtu,) = torch.autograd.grad(new, c_in, u, create_graph=True)
    return torch.linalg.vector_norm(jtu, dim=-1)


def sigma_hinge(
    new: torch.Tensor, c_in: torch.Tensor, generator: torch.Generator, margin: float, iterations: int
) -> torch.Tensor:
    """``relu(σ̂ - margin)^2`` per token ``[n]`` (:func:`sigma_estimate`): zero below the margin."""
    return torch.relu(sigma_estimate(new, c_in, generator, iterations) - margin).pow(2)


def variance_loss(contexts: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """``mean_j relu(target - std_j)`` with ``std_j`` the std of dim ``j`` over the rows of ``[n, C]``
    (scalar; 0 for fewer than 2 rows). ``target`` 1 = a LayerNorm'd context's per-token scale."""
    if contexts.shape[0] < 2:
        return contexts.sum() * 0.0
    std = torch.sqrt(contexts.var(dim=0) + 1e-4)
    return torch.relu(target - std).mean()


def covariance_loss(contexts: torch.Tensor) -> torch.Tensor:
    """``sum_{i≠j} cov_ij^2 / C`` of the rows of ``[n, C]`` (scalar; 0 for fewer than 2 rows)."""
    n, c = contexts.shape
    if n < 2:
        return contexts.sum() * 0.0
    x = contexts - contexts.mean(dim=0)
    cov = x.T @ x / (n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / c


def context_weights(model: CVFPModel) -> list[tuple[torch.nn.Linear, int]]:
    """The weights acting on ``c``: each block's first Linear (input ``[e ; c]``) and the column
    where its ``c`` part starts (``embed_dim``)."""
    out = []
    for block in model.blocks:
        first = block.layers[0]  # type: ignore[index]
        assert isinstance(first, torch.nn.Linear)
        out.append((first, model.config.embed_dim))
    return out


@torch.no_grad()
def project_spectral(model: CVFPModel, scale: float) -> None:
    """Rescale the ``c`` columns of every :func:`context_weights` block whose exact spectral norm
    exceeds ``scale`` so that it equals ``scale`` (a projection: weights already below are kept)."""
    for layer, start in context_weights(model):
        w = layer.weight[:, start:]
        sigma = float(torch.linalg.matrix_norm(w.double(), ord=2))
        if sigma > scale:
            w.mul_(scale / sigma)
