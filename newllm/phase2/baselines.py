"""Count baselines fitted on the training pairs and scored on the validation pairs.

Both use Witten-Bell interpolation (no tuned constant)::

    unigram  p1(v)   = l * c(v) / N + (1 - l) / V,                 l = N / (N + T)
    bigram   p2(v|u) = l_u * c(u, v) / c(u) + (1 - l_u) * p1(v),   l_u = c(u) / (c(u) + T(u))

``c`` counts training targets (``c(u, v)``: target ``v`` after token ``u``), ``N`` the training pairs,
``T`` the distinct target types, ``T(u)`` the distinct targets seen after ``u``; an unseen ``u``
falls back to ``p1``. Top-1 is the argmax of that distribution (lowest id on ties).
"""

from __future__ import annotations

import torch

from .pairs import Pairs
from .scores import Scores, scores


def unigram_probs(target: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``p1 [V]`` (float64) from the training targets."""
    if target.numel() == 0:
        raise ValueError("the unigram baseline needs at least one training pair")
    counts = torch.bincount(target, minlength=vocab_size).double()
    n, types = float(target.numel()), float((counts > 0).sum())
    lam = n / (n + types)
    return lam * counts / n + (1 - lam) / vocab_size


def unigram_predict(train: Pairs, val: Pairs, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p1(target) [P], top-1 prediction [P])`` on ``val`` (float64, int64)."""
    p1 = unigram_probs(train.target, vocab_size)
    return p1[val.target].log(), torch.full((len(val),), int(p1.argmax()), dtype=torch.long)


def unigram_scores(train: Pairs, val: Pairs, vocab_size: int) -> Scores:
    logp, pred = unigram_predict(train, val, vocab_size)
    return scores(logp, pred == val.target)


def bigram_scores(train: Pairs, val: Pairs, vocab_size: int) -> Scores:
    logp, pred = bigram_predict(train, val, vocab_size)
    return scores(logp, pred == val.target)


def bigram_predict(
    train: Pairs, val: Pairs, vocab_size: int, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p2(target | prev) [P], top-1 prediction [P])`` on ``val``: the distribution of each
    distinct validation ``prev`` is built densely, ``chunk`` rows at a time."""
    v = vocab_size
    p1 = unigram_probs(train.target, v)
    keys, counts = torch.unique(train.prev * v + train.target, return_counts=True)
    k_prev, k_next = keys // v, keys % v
    ctx_count = torch.bincount(train.prev, minlength=v).double()  # c(u)
    ctx_types = torch.bincount(k_prev, minlength=v).double()  # T(u)
    lam = torch.where(ctx_count > 0, ctx_count / (ctx_count + ctx_types).clamp_min(1), torch.zeros(()))
    logp = torch.empty(len(val), dtype=torch.float64)
    pred = torch.empty(len(val), dtype=torch.long)
    us, inverse = torch.unique(val.prev, return_inverse=True)
    for a in range(0, us.numel(), chunk):
        u = us[a : a + chunk]
        dist = (1 - lam[u])[:, None] * p1[None, :]  # [k, V]
        sel = torch.isin(k_prev, u)
        row = torch.searchsorted(u, k_prev[sel])
        dist.index_put_(
            (row, k_next[sel]),
            lam[k_prev[sel]] * counts[sel].double() / ctx_count[k_prev[sel]],
            accumulate=True,
        )
        at = ((inverse >= a) & (inverse < a + u.numel())).nonzero().squeeze(1)
        r = inverse[at] - a
        logp[at] = dist[r, val.target[at]].log()
        pred[at] = dist.argmax(dim=1)[r]
    return logp, pred


def baseline_scores(train: Pairs, val: Pairs, vocab_size: int) -> dict[str, Scores]:
    """``{"unigram": ..., "bigram": ...}`` on the validation pairs."""
    return {
        "unigram": unigram_scores(train, val, vocab_size),
        "bigram": bigram_scores(train, val, vocab_size),
    }
