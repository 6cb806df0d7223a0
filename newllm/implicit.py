"""Gradients through a fixed point: implicit differentiation, and the one-step and phantom approximations.

At a fixed point ``c* = f(c*, θ)`` the exact gradient of a loss ``L(c*)`` is (implicit function theorem)
``dL/dθ = gᵀ ∂f/∂θ`` with ``g`` solving ``(I − Jᵀ) g = v``, ``v = ∂L/∂c*``, ``J = ∂f/∂c`` at ``c*``.

* ``implicit``: the output is ``f(c*)`` (equal to ``c*`` at a fixed point) with a hook on its gradient
  that replaces ``v`` by ``g``; ``g`` solves ``g = Jᵀ g + v`` with the package's solvers and stop rule
  (:func:`newllm.iterate`, ``backward`` a :class:`~newllm.SolverConfig`; one VJP per evaluation), or
  with a dense solve of the exact ``(I − J)ᵀ`` (``backward="dense"``; small ``D`` only).
* ``one_step``: ``f(c*)`` with ``c*`` held constant (``g = v``): exact only when ``J = 0``.
* ``phantom``: ``k`` damped steps ``z ← z + λ (f(z) − z)`` from ``c*``, differentiated through (an
  unrolled approximation of ``(I − Jᵀ)⁻¹`` by ``k`` terms of a damped Neumann series).

The forward solve runs without gradients (:func:`newllm.solve`). The map must be deterministic for
``implicit``: eval mode, or train mode with ``dropout_mode="fixed"`` (the masks of the solve are reused).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .config import SolverConfig
from .model import CVFPModel
from .result import FixedPointResult
from .solve import solve
from .solvers import iterate
from .solvers.linalg import solve_rows
from .tokens import as_token_tensor

GRADIENTS = ("implicit", "one_step", "phantom")

#: The default backward solve: Broyden (full memory) to a relative residual of 1e-10 (``‖Δg‖ / ‖g‖``),
#: at most 500 evaluations (VJPs). On the linear adjoint problem Broyden terminates in at most 2D steps in
#: exact arithmetic even where ρ(J) > 1; Anderson's restart-on-growth rule stalls there.
BACKWARD = SolverConfig(method="broyden", metric="rel", threshold=1e-10, max_iterations=500, divergence_factor=None)


@dataclass
class BackwardStats:
    """The backward solves run so far (one :class:`FixedPointResult` per backward pass; ``None`` for
    dense solves), TorchDEQ-style explicit statistics of the adjoint problem."""

    solves: list[FixedPointResult | None] = field(default_factory=list)


def attach(
    fn: Callable[[torch.Tensor], torch.Tensor],
    z_star: torch.Tensor,
    *,
    gradient: str = "implicit",
    backward: SolverConfig | str | None = None,
    phantom_steps: int = 5,
    phantom_damping: float = 0.5,
    stats: BackwardStats | None = None,
) -> torch.Tensor:
    """A differentiable stand-in for the fixed points ``z_star [N, D]`` of the row maps ``fn`` (``[N, D]
    -> [N, D]``, rows independent, ``fn`` differentiable in its input and in whatever it closes over).

    Returns ``[N, D]``: ``fn(z*)`` for ``implicit``/``one_step``, the phantom iterate for ``phantom``;
    see the module doc for the gradients. ``stats`` collects the backward solves.
    """
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {', '.join(GRADIENTS)}; got {gradient!r}")
    if z_star.dim() != 2:
        raise ValueError(f"z_star must be [N, D], got shape {tuple(z_star.shape)}")
    z = z_star.detach()
    if gradient == "one_step":
        return fn(z)
    if gradient == "phantom":
        if phantom_steps < 1 or not 0 < phantom_damping <= 1:
            raise ValueError(f"phantom needs steps >= 1 and damping in (0, 1], got {phantom_steps}, {phantom_damping}")
        for _ in range(phantom_steps):
            z = z + phantom_damping * (fn(z) - z)
        return z
    z = z.clone().requires_grad_(True)
    out = fn(z)
    if not out.requires_grad:
        return out
    busy = [False]  # the adjoint's own VJPs through `out` pass this hook unchanged

    def hook(v: torch.Tensor | None) -> torch.Tensor | None:
        if busy[0] or v is None:
            return None
        busy[0] = True
        try:
            return adjoint(out, z, v, backward, stats)
        finally:
            busy[0] = False

    out.register_hook(hook)
    return out


def adjoint(
    out: torch.Tensor,
    z: torch.Tensor,
    v: torch.Tensor,
    backward: SolverConfig | str | None = None,
    stats: BackwardStats | None = None,
) -> torch.Tensor:
    """``g [N, D]`` solving ``(I − Jᵀ) g = v`` row by row, ``J = ∂out/∂z`` (``out = f(z)`` recorded with a
    graph). ``backward``: a :class:`SolverConfig` (default :data:`BACKWARD`) or ``"dense"``."""
    if isinstance(backward, str):
        if backward != "dense":
            raise ValueError(f"backward must be a SolverConfig or 'dense', got {backward!r}")
        jac = _dense_jacobian(out, z)  # [N, D, D]
        eye = torch.eye(z.shape[1], dtype=jac.dtype, device=jac.device)
        g, _ = solve_rows((eye - jac).transpose(1, 2), v.detach().to(jac.dtype))
        if stats is not None:
            stats.solves.append(None)
        return g.to(v.dtype)
    cfg = BACKWARD if backward is None else backward
    v = v.detach()

    def fn(g: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        full = g if rows is None else torch.zeros_like(v).index_copy_(0, rows, g)
        (jtg,) = torch.autograd.grad(out, z, full, retain_graph=True)
        return jtg + v if rows is None else (jtg + v)[rows]

    with torch.no_grad():
        res = iterate(fn, v.clone(), cfg)
    if stats is not None:
        stats.solves.append(res)
    return res.context


def _dense_jacobian(out: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``[N, D, D]``: ``J[n, i, j] = ∂out[n, i] / ∂z[n, j]`` from ``D`` VJPs through the recorded graph."""
    n, d = z.shape
    basis = torch.eye(d, dtype=out.dtype, device=out.device).unsqueeze(1).expand(d, n, d)
    (rows,) = torch.autograd.grad(out, z, basis, retain_graph=True, is_grads_batched=True)  # [D_out, N, D_in]
    return rows.permute(1, 0, 2)


@dataclass
class ImplicitFixedPoint:
    """``context [*S, C]`` (differentiable as chosen), the forward :class:`FixedPointResult` and the
    backward statistics (filled when a loss through ``context`` is back-propagated)."""

    context: torch.Tensor
    forward: FixedPointResult
    backward: BackwardStats


def fixed_point(
    model: CVFPModel,
    token_ids: torch.Tensor | Sequence[int],
    config: SolverConfig | None = None,
    *,
    gradient: str = "implicit",
    backward: SolverConfig | str | None = None,
    phantom_steps: int = 5,
    phantom_damping: float = 0.5,
    init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> ImplicitFixedPoint:
    """Fixed-point contexts of ``token_ids [*S]`` through which gradients reach the model's parameters
    (and its embedding): :func:`newllm.solve` without gradients, then :func:`attach` on
    ``c -> model.step(embed(token), c)`` in the mode of the solve (see the module doc).

    For Phase 1/Phase 2 code: ``loss(fp.context).backward()`` fills ``p.grad`` of every parameter.
    """
    config = SolverConfig() if config is None else config
    if gradient == "implicit" and config.train_mode and config.dropout_mode != "fixed":
        raise ValueError("implicit gradients need a deterministic map: eval mode or dropout_mode='fixed'")
    ids = as_token_tensor(token_ids, model.config.vocab_size)
    res = solve(model, ids, config, init=init, generator=generator)
    shape, c_dim = tuple(ids.shape), model.config.context_dim
    masks = res.extra.get("dropout_masks")
    held = None if masks is None else [m.reshape(-1, m.shape[-1]) for m in masks]
    was = model.training
    model.train(config.train_mode)
    try:
        emb = model.embed(ids).reshape(-1, model.config.embed_dim)
        stats = BackwardStats()
        out = attach(
            lambda z: model.step(emb, z, generator=generator, masks=held),
            res.context.reshape(-1, c_dim),
            gradient=gradient,
            backward=backward,
            phantom_steps=phantom_steps,
            phantom_damping=phantom_damping,
            stats=stats,
        )
    finally:
        model.train(was)
    return ImplicitFixedPoint(out.reshape(*shape, c_dim), res, stats)
