"""The train/validation split of a Phase 1 cache's samples, by conversation."""

from __future__ import annotations

from collections.abc import Sequence

from ..data.split import split_conversations


def sample_keys(num_samples: int, conversation_ids: Sequence[str] | None = None) -> list[str]:
    """One key per sample: its conversation id (from data.json) or ``sample-<s>`` when there is none."""
    if conversation_ids is None:
        return [f"sample-{s}" for s in range(num_samples)]
    if len(conversation_ids) != num_samples:
        raise ValueError(
            f"data.json names {len(conversation_ids)} conversations but the cache holds {num_samples} samples"
        )
    return [str(c) for c in conversation_ids]


def split_samples(keys: Sequence[str], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(train, validation)`` sample indices: samples sharing a key stay on one side (seeded shuffle of
    the distinct keys, :func:`newllm.data.split_conversations`)."""
    return split_conversations(list(range(len(keys))), val_fraction, seed, key=lambda s: keys[s])
