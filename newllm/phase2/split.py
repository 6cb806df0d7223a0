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


def check_conversations(keys: Sequence[str], where: str = "the Phase 1 run") -> None:
    """ValueError unless the samples hold at least two distinct conversations: Phase 2 trains on one side
    of the split and validates on the other, and a conversation never spans both."""
    distinct = len(set(keys))
    if distinct < 2:
        raise ValueError(
            f"Phase 2 needs at least two conversations (one to train on, one to validate on); {where} "
            f"holds {len(keys)} sample(s) of {distinct} distinct conversation(s): train it with --data and "
            "--samples 2 or more, or with --samples-json listing two or more samples"
        )


def split_samples(keys: Sequence[str], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(train, validation)`` sample indices: samples sharing a key stay on one side (seeded shuffle of
    the distinct keys, :func:`newllm.data.split_conversations`); at least two distinct keys
    (:func:`check_conversations`)."""
    check_conversations(keys)
    return split_conversations(list(range(len(keys))), val_fraction, seed, key=lambda s: keys[s])
