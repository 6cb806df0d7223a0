"""``newllm.solve``: fixed-point contexts of a model for a batch of tokens."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from . import protocol
from .config import SolverConfig
from .protocol import ContextModel
from .result import FixedPointResult
from .solvers import iterate


def solve(
    model: ContextModel,
    token_ids: torch.Tensor | Sequence[int],
    config: SolverConfig | None = None,
    *,
    init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    certify: bool = False,
) -> FixedPointResult:
    """Iterate ``c <- model.step(embed(token), c)`` to a fixed point for every token of ``token_ids [*S]``.

    ``reset`` mode (the seeds): every token starts from ``init`` (zeros by default, broadcastable to
    ``[*S, C]``) and all tokens iterate together in one batch. ``carry`` mode: along the last
    axis of ``token_ids``, token t starts from token t-1's final context (positions run in order;
    the leading axes are batched). Runs under ``no_grad`` in eval mode, or in train mode when
    ``config.train_mode``: dropout masks from ``generator``, fresh at every iteration or, with
    ``config.dropout_mode="fixed"``, one per token for the whole solve (drawn before the first
    iteration; needs a model with ``dropout_masks``, as :class:`~newllm.model.CVFPModel`). The
    model's mode is restored afterwards. ``model``: any model satisfying :mod:`newllm.protocol`
    (ValueError naming what it lacks otherwise).

    ``certify=True`` adds a posteriori error bounds (:func:`newllm.certify.certify`):
    ``result.error_bound [*S]`` and ``result.error_bound_kind [*S]``. It needs a deterministic map:
    eval mode, or train mode with fixed masks.
    """
    config = SolverConfig() if config is None else config
    protocol.require(model)
    fixed = config.train_mode and config.dropout_mode == "fixed"
    if certify and config.train_mode and not fixed:
        raise ValueError("certify=True needs a deterministic map: eval mode or dropout_mode='fixed'")
    if fixed and not callable(getattr(model, "dropout_masks", None)):
        raise ValueError(f"dropout_mode='fixed' needs a model with dropout_masks(); {type(model).__name__} has none")
    ids = protocol.token_tensor(model, token_ids)
    was_training = model.training
    model.train(config.train_mode)
    try:
        with torch.no_grad():
            emb = model.embed(ids)  # [*S, E]
            shape = tuple(ids.shape)
            c0 = model.initial_context(shape) if init is None else _broadcast_init(init, shape, model)
            masks = model.dropout_masks(shape, generator=generator) if fixed else None  # type: ignore[attr-defined]
            if config.context_mode == "carry":
                res = _solve_carry(model, emb, c0, config, generator, masks)
            else:
                flat = None if masks is None else [m.reshape(-1, m.shape[-1]) for m in masks]
                res = _solve_rows(
                    model, emb.reshape(-1, emb.shape[-1]), c0.reshape(-1, c0.shape[-1]), config, generator, flat
                ).reshaped(shape)
        if masks is not None:
            res.extra["dropout_masks"] = masks  # the fixed masks ([*S, H] each): the map that was solved
        if certify:
            from .certify import certify as _certify
            from .model import CVFPModel

            if not isinstance(model, CVFPModel):
                raise ValueError(f"certify=True needs a newllm CVFPModel (a float64 twin), got {type(model).__name__}")
            res = _certify(model, emb, res, masks=masks)
        return res
    finally:
        model.train(was_training)


def _broadcast_init(init: torch.Tensor, shape: tuple[int, ...], model: ContextModel) -> torch.Tensor:
    like = model.initial_context(shape)
    c = like.shape[-1]
    if init.shape[-1:] != (c,):
        raise ValueError(f"init must end in the context dim {c}, got shape {tuple(init.shape)}")
    if not bool(torch.isfinite(init).all()):
        raise ValueError("init holds NaN or inf values: a start context must be finite")
    try:
        return init.to(device=like.device, dtype=like.dtype).expand(*shape, c).clone()
    except RuntimeError:
        raise ValueError(f"init of shape {tuple(init.shape)} does not broadcast to {(*shape, c)}") from None


def _solve_rows(
    model: ContextModel,
    emb: torch.Tensor,
    c0: torch.Tensor,
    config: SolverConfig,
    generator: torch.Generator | None,
    masks: list[torch.Tensor] | None = None,
) -> FixedPointResult:
    """Rows ``emb [N, E]`` from ``c0 [N, C]``; ``masks`` (each ``[N, H]``): fixed dropout masks."""
    step = protocol.step_fn(model, generator)

    def fn(z: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        e = emb if rows is None else emb[rows]
        if masks is None:
            return step(e, z)
        held = masks if rows is None else [m[rows] for m in masks]
        return model.step(e, z, masks=held)  # type: ignore[call-arg]

    return iterate(fn, c0, config)


def _solve_carry(
    model: ContextModel,
    emb: torch.Tensor,
    c0: torch.Tensor,
    config: SolverConfig,
    generator: torch.Generator | None,
    masks: list[torch.Tensor] | None = None,
) -> FixedPointResult:
    shape = emb.shape[:-1]
    if len(shape) == 0:
        flat = None if masks is None else [m.reshape(1, -1) for m in masks]
        return _solve_rows(model, emb.reshape(1, -1), c0.reshape(1, -1), config, generator, flat).reshaped(())
    lead, t_len = shape[:-1], shape[-1]
    e = emb.reshape(-1, t_len, emb.shape[-1])
    held = None if masks is None else [m.reshape(-1, t_len, m.shape[-1]) for m in masks]
    start = c0.reshape(-1, t_len, c0.shape[-1])[:, 0]
    parts = []
    for t in range(t_len):
        at_t = None if held is None else [m[:, t] for m in held]
        r = _solve_rows(model, e[:, t], start, config, generator, at_t)
        parts.append(r)
        start = r.context
    return _stack_positions(parts, config).reshaped((*lead, t_len))


def _stack_positions(parts: list[FixedPointResult], config: SolverConfig) -> FixedPointResult:
    """Combine per-position results ``[B]`` into ``[B, T]`` (traces NaN-padded to the longest)."""
    trace = None
    if config.record_trace:
        k = max(p.trace[config.metric].shape[0] for p in parts)  # type: ignore[index]
        trace = {}
        for m in parts[0].trace:  # type: ignore[union-attr]
            cols = []
            for p in parts:
                tr = p.trace[m]  # type: ignore[index]
                pad = tr.new_full((k - tr.shape[0], tr.shape[1]), math.nan)
                cols.append(torch.cat([tr, pad]))
            trace[m] = torch.stack(cols, dim=-1)
    first = parts[0]
    return FixedPointResult(
        context=torch.stack([p.context for p in parts], dim=1),
        status=torch.stack([p.status for p in parts], dim=1),
        iterations=torch.stack([p.iterations for p in parts], dim=1),
        evaluations=torch.stack([p.evaluations for p in parts], dim=1),
        residual={m: torch.stack([p.residual[m] for p in parts], dim=1) for m in first.residual},
        lowest_residual=torch.stack([p.lowest_residual for p in parts], dim=1),
        metric=first.metric,
        threshold=first.threshold,
        max_iterations=first.max_iterations,
        trace=trace,
    )
