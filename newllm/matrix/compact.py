"""Phase 1 on the rows of the used token ids only: the same training as the full vocabulary, faster.

With Adam (no weight decay), an embedding row that never receives a gradient keeps ``exp_avg = 0``
and ``exp_avg_sq = 0`` and so is never changed; the gradient-clipping norm sums zeros for it. Training a
model whose embedding holds just the used rows (copied from the full initialisation) therefore gives
the same weights as training the full 50,259-row model, up to float summation order in the clipping
norm, at a fraction of the cost (Adam touches 12.9M entries per step otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from ..model import CVFPModel


def compact_model(model: CVFPModel, token_ids: Sequence[int]) -> tuple[CVFPModel, dict[int, int]]:
    """A copy of ``model`` whose embedding holds only the rows of ``token_ids``, and the id map.

    The compact vocabulary is the sorted distinct ids plus one unused padding row (a vocabulary
    needs at least two entries). Every other parameter is copied unchanged.
    """
    uniq = sorted({int(t) for t in token_ids})
    if not uniq:
        raise ValueError("compact_model needs at least one token id")
    vocab = model.config.vocab_size
    if uniq[0] < 0 or uniq[-1] >= vocab:
        raise ValueError(f"token ids must lie in [0, {vocab}), got {uniq[0]}..{uniq[-1]}")
    small = CVFPModel(replace(model.config, vocab_size=len(uniq) + 1))
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "token_embedding.weight"}
    full = model.token_embedding.weight.detach()
    rows = torch.tensor(uniq, dtype=torch.long, device=full.device)
    state["token_embedding.weight"] = torch.cat([full[rows], full[rows[:1]]]).clone()
    small.load_state_dict(state)
    small.to(full.device)
    return small, {t: i for i, t in enumerate(uniq)}


def remap(token_ids: Sequence[int], id_map: dict[int, int]) -> list[int]:
    """Original ids -> compact ids (KeyError-free: unknown ids raise ValueError naming them)."""
    try:
        return [id_map[int(t)] for t in token_ids]
    except KeyError as exc:
        raise ValueError(f"token id {exc.args[0]} is not in the compact vocabulary") from None
