"""How many fixed points does a token's map have? Solve from several starts with several solvers and
count the distinct fixed points found, each with its contraction numbers and collapse diagnostics.

A probe, not a proof: it reports the fixed points it found (at most one per start and solver), so
``count`` is a lower bound on the number that exist. Two found points are the same fixed point when
they lie within ``separation × max(1, ‖a‖, ‖b‖)`` of each other (l2), or within the sum of their
certified error bounds (:mod:`newllm.certify`) when both are finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from . import diagnostics
from .certify import certify_map, precise_twin
from .config import SolverConfig
from .contraction.jacobian import jacobian, spectrum
from .model import CVFPModel
from .solvers import iterate
from .solvers.rows import RowMap
from .tokens import as_token_tensor

#: A found point whose context RMS is below this sits where the last LayerNorm's input variance is far
#: below its eps (a degenerate fixed point: the LayerNorm returns about its bias).
DEGENERATE_RMS = 0.1

#: The default solve of each (start, method): float64, rel < 1e-10, 500 evaluations.
PROBE = SolverConfig(metric="rel", threshold=1e-10, max_iterations=500, divergence_factor=None)


@dataclass
class Found:
    """One distinct fixed point of one token: ``context [D]``, which ``start/method`` runs reached it,
    its l2 norm and RMS, exact ``sigma_max`` and ``rho`` of the Jacobian there, the certified error
    bound and its kind, and ``degenerate`` (RMS below :data:`DEGENERATE_RMS`)."""

    context: torch.Tensor
    found_by: list[str]
    norm: float
    rms: float
    sigma_max: float = math.nan
    rho: float = math.nan
    error_bound: float = math.inf
    bound_kind: str = "none"
    degenerate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "context"}


@dataclass
class Multiplicity:
    """Per token (``token_ids``): the distinct fixed points found (``points[i]``, most often found
    first), their number ``counts [N]``, and collapse diagnostics over tokens of the first points
    (``primary``) and of all the others (``others``, None when there are none)."""

    token_ids: list[int]
    points: list[list[Found]]
    starts: list[str]
    primary: dict[str, float] | None = None
    others: dict[str, float] | None = None

    @property
    def counts(self) -> torch.Tensor:
        return torch.tensor([len(p) for p in self.points], dtype=torch.long)

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "token_ids": self.token_ids,
            "starts": self.starts,
            "counts": c.tolist(),
            "tokens_with_several": int((c > 1).sum()),
            "tokens_with_none": int((c == 0).sum()),
            "points": [[f.to_dict() for f in p] for p in self.points],
            "primary_collapse": self.primary,
            "other_collapse": self.others,
        }


def distinct_fixed_points(
    fn: RowMap,
    starts: dict[str, torch.Tensor],
    methods: Sequence[str] = ("anderson", "broyden"),
    config: SolverConfig = PROBE,
    *,
    separation: float = 1e-3,
    certify: bool = True,
) -> list[list[Found]]:
    """Solve ``z = fn(z)`` (rows independent, ``[N, D]``) from every start (name -> ``[N, D]``) with every
    method; per row, the distinct converged points (module doc) with their certified bounds."""
    found: list[list[tuple[torch.Tensor, str]]] = [[] for _ in range(next(iter(starts.values())).shape[0])]
    for name, z0 in starts.items():
        for method in methods:
            with torch.no_grad():
                res = iterate(fn, z0, replace(config, method=method))
            for i in res.converged.nonzero().flatten().tolist():
                found[i].append((res.context[i], f"{name}/{method}"))
    bound = _bounds(fn, found) if certify else None
    out = []
    for i, cands in enumerate(found):
        groups: list[list[int]] = []
        for j, (c, _) in enumerate(cands):
            for g in groups:
                a = cands[g[0]][0]
                slack = max(separation * max(1.0, float(a.norm()), float(c.norm())), _pair_slack(bound, i, g[0], j))
                if float((a - c).norm()) <= slack:
                    g.append(j)
                    break
            else:
                groups.append([j])
        groups.sort(key=len, reverse=True)
        out.append([_found(cands, g, None if bound is None else bound[i]) for g in groups])
    return out


def _bounds(fn: RowMap, found: list[list[tuple[torch.Tensor, str]]]) -> list[list[tuple[float, str]]]:
    """Certified (bound, kind) of every candidate, from one batched certification."""
    rows = [i for i, cands in enumerate(found) for _ in cands]
    if not rows:
        return [[] for _ in found]
    pts = torch.stack([c for cands in found for c, _ in cands])
    index = torch.tensor(rows, device=pts.device)
    cert = certify_map(lambda z, r: fn(z, index[r]), pts)
    kinds = cert.to_dict()["kind"]
    flat = iter(zip(cert.bound.tolist(), kinds, strict=True))
    return [[next(flat) for _ in cands] for cands in found]


def _pair_slack(bound: list[list[tuple[float, str]]] | None, i: int, a: int, b: int) -> float:
    if bound is None:
        return 0.0
    total = bound[i][a][0] + bound[i][b][0]
    return total if math.isfinite(total) else 0.0


def _found(cands: list[tuple[torch.Tensor, str]], group: list[int], bounds: list[tuple[float, str]] | None) -> Found:
    c = cands[group[0]][0]
    rms = float(diagnostics.context_rms(c))
    b, kind = (math.inf, "none") if bounds is None else bounds[group[0]]
    return Found(
        context=c,
        found_by=[cands[j][1] for j in group],
        norm=float(c.norm()),
        rms=rms,
        error_bound=b,
        bound_kind=kind,
        degenerate=rms < DEGENERATE_RMS,
    )


def fixed_points(
    model: CVFPModel,
    token_ids: torch.Tensor | Sequence[int],
    *,
    random_starts: int = 2,
    methods: Sequence[str] = ("anderson", "broyden"),
    config: SolverConfig = PROBE,
    separation: float = 1e-3,
    seed: int = 0,
) -> Multiplicity:
    """The multiplicity probe on ``model``'s maps (eval mode, float64 twin of the update) for
    ``token_ids [N]``. Starts: ``zeros`` (the seeds' reset), ``random{k}`` (``N(0, 1)`` entries, the
    scale of a LayerNorm'd context, from a generator seeded ``seed``), ``carry`` (token ``t`` starts
    from token ``t − 1``'s fixed point from zeros, token 0 from the last token's). Every distinct point
    gets its exact σ_max and ρ (full Jacobian) and its certified bound; see :class:`Multiplicity`."""
    ids = as_token_tensor(token_ids, model.config.vocab_size).reshape(-1)
    twin = precise_twin(model).eval()
    with torch.no_grad():
        emb = model.embed(ids).to(torch.float64)

    def fn(z: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        return twin.step(emb if rows is None else emb[rows], z)

    n, d = ids.numel(), model.config.context_dim
    zeros = torch.zeros(n, d, dtype=torch.float64, device=emb.device)
    gen = torch.Generator().manual_seed(seed)
    starts = {"zeros": zeros}
    for k in range(random_starts):
        starts[f"random{k}"] = torch.randn(n, d, generator=gen, dtype=torch.float64).to(emb.device)
    with torch.no_grad():
        first = iterate(fn, zeros, replace(config, method=methods[0]))
    starts["carry"] = torch.roll(torch.where(first.converged.unsqueeze(1), first.context, zeros), 1, dims=0)
    points = distinct_fixed_points(fn, starts, methods, config, separation=separation)
    _spectra(fn, points)
    prim = [p[0].context for p in points if p]
    rest = [f.context for p in points for f in p[1:]]
    return Multiplicity(
        token_ids=ids.tolist(),
        points=points,
        starts=list(starts),
        primary=diagnostics.collapse_report(torch.stack(prim)) if prim else None,
        others=diagnostics.collapse_report(torch.stack(rest)) if rest else None,
    )


def _spectra(fn: RowMap, points: list[list[Found]]) -> None:
    """Fill ``sigma_max``/``rho`` of every found point from its exact Jacobian (one batched call)."""
    rows = [i for i, p in enumerate(points) for _ in p]
    if not rows:
        return
    pts = torch.stack([f.context for p in points for f in p])
    index = torch.tensor(rows, device=pts.device)
    sigma, rho = spectrum(jacobian(lambda z: fn(z, index), pts))
    flat = iter(zip(sigma.tolist(), rho.tolist(), strict=True))
    for p in points:
        for f in p:
            f.sigma_max, f.rho = next(flat)
