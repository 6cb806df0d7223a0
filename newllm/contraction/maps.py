"""Maps the estimators work on: ``fn(z [N, *P, D]) -> [N, *P, D]``, one map per row of the first axis.

Row ``i`` of the first axis is the map of token ``i``; the axes ``*P`` (possibly none) are extra
points at which the same map is evaluated. Rows must not interact (true for the model in eval mode:
every operation is per row), so one batched call gives every token's map at once, and one JVP/VJP
with a tangent ``[N, D]`` gives every token's Jacobian-vector product.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from .. import protocol
from ..protocol import ContextModel

#: ``fn(z [N, *P, D]) -> [N, *P, D]``: token ``i``'s map applied to the points ``z[i]``.
PointMap = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode (no dropout) for the block, then restore its mode."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def model_map(model: ContextModel, token_ids: torch.Tensor | Sequence[int]) -> PointMap:
    """``c -> model.step(embed(token_i), c)`` for ``token_ids [N]`` (flattened), as a :data:`PointMap`.

    The map calls ``model.step`` (the one update; any :mod:`newllm.protocol` model). It refuses to run in train mode: dropout
    would make every evaluation a different random map.
    """
    ids = protocol.token_tensor(model, token_ids).reshape(-1)
    with torch.no_grad():
        emb = model.embed(ids)  # [N, E]
    n, width = emb.shape

    def fn(z: torch.Tensor) -> torch.Tensor:
        if model.training:
            raise ValueError("the model is in train mode: estimate contraction in eval mode (no dropout)")
        if z.dim() < 2 or z.shape[0] != n:
            raise ValueError(f"expected contexts [N={n}, ..., C], got shape {tuple(z.shape)}")
        e = emb.to(z.dtype).reshape(n, *([1] * (z.dim() - 2)), width)
        return model.step(e, z)

    return fn


def linear_map(a: torch.Tensor, b: torch.Tensor | None = None) -> PointMap:
    """The affine maps ``z -> A_i z + b_i`` for ``a [N, D, D]`` (or one ``[D, D]`` for every row), ``b [N, D]``."""
    if a.dim() not in (2, 3) or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"a must be [D, D] or [N, D, D], got shape {tuple(a.shape)}")

    def fn(z: torch.Tensor) -> torch.Tensor:
        mat = a if a.dim() == 3 else a.expand(z.shape[0], *a.shape)
        out = torch.einsum("nij,n...j->n...i", mat.to(z.dtype), z)
        if b is not None:
            out = out + b.to(z.dtype).reshape(z.shape[0], *([1] * (z.dim() - 2)), z.shape[-1])
        return out

    return fn
