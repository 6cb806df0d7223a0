"""Collapse diagnostics for a set of contexts ``[N, C]``.

A map that sends every token to the same context converges trivially; these numbers say so.
"""

from __future__ import annotations

import math

import torch


def context_rms(contexts: torch.Tensor) -> torch.Tensor:
    """Per-context RMS ``sqrt(mean(c**2))``: ``[..., C] -> [...]``. LayerNorm'd contexts sit near 1."""
    return contexts.pow(2).mean(dim=-1).sqrt()


def effective_rank(contexts: torch.Tensor) -> float:
    """``exp(H(p))`` with ``p`` the singular values of ``[N, C]`` normalised to sum 1 (Roy & Vetterli).

    1.0 for identical (rank-one) contexts; at most ``min(N, C)``. 0.0 for an all-zero matrix.
    """
    x = contexts.reshape(-1, contexts.shape[-1]).double()
    s = torch.linalg.svdvals(x)
    total = s.sum()
    if not bool(total > 0):
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def pairwise_cosine(contexts: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of distinct rows of ``[N, C]``: a flat ``[N (N-1) / 2]`` tensor."""
    x = contexts.reshape(-1, contexts.shape[-1]).double()
    n = x.shape[0]
    if n < 2:
        return x.new_empty(0)
    unit = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-300)
    sim = unit @ unit.T
    i, j = torch.triu_indices(n, n, offset=1)
    return sim[i, j]


def distinctness(contexts: torch.Tensor, token_ids: torch.Tensor | None = None) -> dict[str, float]:
    """How different the contexts of different tokens are.

    Pairs with equal ``token_ids`` (when given) are skipped. Returns ``max_cosine``, ``mean_cosine``,
    ``min_cosine_distance`` (= 1 - max_cosine) and ``mean_cosine_distance``; NaN with fewer than 2 tokens.
    """
    x = contexts.reshape(-1, contexts.shape[-1])
    cos = pairwise_cosine(x)
    if token_ids is not None and cos.numel() > 0:
        ids = token_ids.reshape(-1).to(x.device)
        i, j = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
        cos = cos[ids[i] != ids[j]]
    if cos.numel() == 0:
        nan = math.nan
        return {
            "max_cosine": nan,
            "mean_cosine": nan,
            "min_cosine_distance": nan,
            "mean_cosine_distance": nan,
        }
    mx, mean = float(cos.max()), float(cos.mean())
    return {
        "max_cosine": mx,
        "mean_cosine": mean,
        "min_cosine_distance": 1.0 - mx,
        "mean_cosine_distance": 1.0 - mean,
    }


def collapse_report(
    contexts: torch.Tensor, token_ids: torch.Tensor | None = None, *, max_tokens: int | None = 1024
) -> dict[str, float]:
    """RMS (mean, min), effective rank and distinctness of ``[N, C]`` contexts, JSON-ready.

    With ``token_ids``, repeated tokens count once (first occurrence). More than ``max_tokens`` rows are
    thinned to ``max_tokens`` evenly spaced ones (deterministic), keeping the pairwise part O(max_tokens²).
    """
    x = contexts.reshape(-1, contexts.shape[-1]).detach()
    if token_ids is not None:
        ids = token_ids.reshape(-1).cpu()
        first = torch.unique(ids, return_inverse=True)[1]
        keep = torch.full((int(first.max()) + 1,), ids.numel(), dtype=torch.long).scatter_reduce(
            0, first, torch.arange(ids.numel()), reduce="amin"
        )
        keep = keep.sort().values
        x, token_ids = x[keep.to(x.device)], ids[keep]
    if max_tokens is not None and x.shape[0] > max_tokens:
        pick = torch.linspace(0, x.shape[0] - 1, max_tokens).round().long()
        x = x[pick.to(x.device)]
        token_ids = None if token_ids is None else token_ids[pick]
    r = context_rms(x)
    out = {
        "context_rms": float(r.mean()),
        "context_rms_min": float(r.min()),
        "context_norm": float(torch.linalg.vector_norm(x.double(), dim=-1).mean()),
        "effective_rank": effective_rank(x),
    }
    out.update(distinctness(x, token_ids))
    return out


def is_collapsed(
    report: dict[str, float], *, max_cosine: float = 0.999, mean_cosine: float = 0.99, min_rms: float = 0.1
) -> bool:
    """Flag a collapse: some context (near-)zero -- a LayerNorm'd context has RMS about its gain, 1 at
    init, so RMS < 0.1 means a degenerate LayerNorm -- or two different tokens with (near-)identical
    contexts, or all contexts nearly aligned (mean pairwise cosine above ``mean_cosine``)."""
    if report["context_rms_min"] < min_rms:
        return True
    if math.isnan(report["max_cosine"]):
        return False
    return report["max_cosine"] > max_cosine or report["mean_cosine"] > mean_cosine
