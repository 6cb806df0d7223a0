"""Next-token pairs from the Phase 1 cache: the context at position t predicts token t + 1 of the same sample.

No pair crosses a sample (conversation) boundary: a sample of T tokens gives T - 1 pairs, the last
token of a sample is never an input and the first is never a target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Pairs:
    """``P`` next-token pairs, each field ``[P]`` int64."""

    #: Row of the input context in the cache (position t).
    rows: torch.Tensor
    #: Token at position t (the bigram's condition).
    prev: torch.Tensor
    #: Token at position t + 1 (the target).
    target: torch.Tensor
    #: Sample (conversation) index of the pair.
    sample: torch.Tensor

    def __len__(self) -> int:
        return int(self.rows.numel())


def next_token_pairs(
    token_ids: torch.Tensor,
    offsets: torch.Tensor,
    samples: Sequence[int],
    loss_masks: Sequence[Sequence[int]] | None = None,
) -> Pairs:
    """Pairs of the given samples, in sample then position order.

    ``token_ids [N]`` and ``offsets [S+1]`` are the cache's. With ``loss_masks`` (one list per
    sample, aligned with its tokens), a pair is kept only when the mask of its target is 1.
    """
    n_samples = offsets.numel() - 1
    if loss_masks is not None and len(loss_masks) != n_samples:
        raise ValueError(f"loss_masks has {len(loss_masks)} entries, expected one per sample ({n_samples})")
    rows, samp = [], []
    for s in samples:
        if not 0 <= s < n_samples:
            raise ValueError(f"sample index {s} is out of range [0, {n_samples})")
        a, b = int(offsets[s]), int(offsets[s + 1])
        pos = torch.arange(a, b - 1)
        if loss_masks is not None:
            mask = torch.as_tensor(list(loss_masks[s]), dtype=torch.bool)
            if mask.numel() != b - a:
                raise ValueError(
                    f"loss mask of sample {s} has {mask.numel()} entries, the sample {b - a} tokens"
                )
            pos = pos[mask[1:]]
        rows.append(pos)
        samp.append(torch.full((pos.numel(),), s, dtype=torch.long))
    r = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
    return Pairs(
        rows=r,
        prev=token_ids[r],
        target=token_ids[r + 1],
        sample=torch.cat(samp) if samp else torch.zeros(0, dtype=torch.long),
    )
