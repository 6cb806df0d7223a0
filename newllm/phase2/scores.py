"""Validation scores of a next-token predictor: cross-entropy (nats), perplexity, top-1 accuracy."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Scores:
    #: Mean of ``-log p(target)`` over the positions, in nats.
    ce: float
    #: ``exp(ce)``.
    ppl: float
    #: Fraction of positions whose most probable token (lowest id on ties) is the target.
    acc: float
    positions: int

    def to_dict(self) -> dict:
        return asdict(self)


def scores(target_logp: torch.Tensor, correct: torch.Tensor) -> Scores:
    """From ``log p(target) [P]`` and ``argmax == target [P]`` (summed in float64)."""
    n = int(target_logp.numel())
    if n == 0 or correct.numel() != n:
        raise ValueError(
            f"scores need the same non-zero number of log-probs and verdicts, got {n} and {correct.numel()}"
        )
    ce = float(-target_logp.double().sum() / n)
    return Scores(
        ce=ce, ppl=math.exp(ce) if ce < 700 else math.inf, acc=float(correct.double().sum() / n), positions=n
    )
