"""Local contraction of the update at a context: the exact Jacobian ``J = d step(e, c) / d c``.

For each token, ``J`` is ``[C, C]`` (``torch.func.jacrev``, eval mode). ``sigma_max`` (its largest
singular value) is the local Lipschitz constant in l2: below 1 the map is a local contraction, the
notes' "k < 1". ``rho`` (its spectral radius) decides local convergence of plain iteration: below 1
the fixed point attracts, even when ``sigma_max >= 1``. Exact for the handful of tokens the report
uses; ``newllm.contraction`` (estimators for many tokens) can replace :func:`jacobians` when wanted.
"""

from __future__ import annotations

import torch
from torch.func import jacrev, vmap

from ..model import CVFPModel


def jacobians(model: CVFPModel, embedding: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
    """``[n, E], [n, C] -> [n, C, C]``: the Jacobian of one eval-mode update at each context."""
    was = model.training
    model.eval()
    try:

        def f(c: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            return model.step(e, c)

        return vmap(jacrev(f))(contexts.detach(), embedding.detach()).detach()
    finally:
        model.train(was)


def spectrum(model: CVFPModel, embedding: torch.Tensor, contexts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per token: ``singular`` values ``[n, C]`` (descending), ``eig_abs`` ``[n, C]`` (descending),
    ``sigma_max [n]`` and ``rho [n]`` (float64)."""
    j = jacobians(model, embedding, contexts).double()
    sv = torch.linalg.svdvals(j)
    ev = torch.linalg.eigvals(j).abs().sort(dim=-1, descending=True).values
    return {"singular": sv, "eig_abs": ev, "sigma_max": sv[:, 0], "rho": ev[:, 0]}


def gate_means(model: CVFPModel, embedding: torch.Tensor, contexts: torch.Tensor) -> dict[str, float]:
    """Mean ``sigmoid`` of the forget and input gates over blocks, tokens and units, at ``contexts``,
    and ``gate_sum_dev``: the mean of ``|forget + input - 1|`` (0 when the update is a convex combination).

    Seed 003 argues that at random init both sit near 0.5 ("a damped update", "a convex combination").
    """
    seen: list[torch.Tensor] = []
    hooks = [b.gates.register_forward_hook(lambda _m, _i, out: seen.append(out)) for b in model.block_list()]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model.step(embedding, contexts)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    f = [torch.sigmoid(o.chunk(3, dim=-1)[0]).double() for o in seen]
    i = [torch.sigmoid(o.chunk(3, dim=-1)[1]).double() for o in seen]
    dev = torch.stack([(a + b - 1).abs().mean() for a, b in zip(f, i, strict=True)])
    return {
        "forget_gate_mean": float(torch.stack([a.mean() for a in f]).mean()),
        "input_gate_mean": float(torch.stack([b.mean() for b in i]).mean()),
        "gate_sum_dev": float(dev.mean()),
    }
