"""A train/validation split by conversation: every conversation lands wholly on one side."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def _default_key(item: Any) -> Hashable:
    return item.id if hasattr(item, "id") else item


def split_conversations(
    items: Sequence[T],
    val_fraction: float = 0.1,
    seed: int = 0,
    key: Callable[[T], Hashable] = _default_key,
) -> tuple[list[T], list[T]]:
    """``(train, validation)``: the distinct keys (default: ``item.id``, else the item itself), sorted
    by ``repr``, are shuffled with ``random.Random(seed)``; the first ``round(val_fraction * n)``
    (at least 1, at most n - 1) are validation. Items sharing a key stay together, so no validation
    conversation appears in training. Each side keeps the input order. Needs at least two distinct keys.
    Pass ``key=lambda c: tuple(c.input_ids)`` to also keep identical contents under different ids together.
    """
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, int | float)
        or not 0 < val_fraction < 1
    ):
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    keys = [key(it) for it in items]
    distinct = sorted(set(keys), key=repr)
    if len(distinct) < 2:
        raise ValueError(f"need at least 2 distinct conversations to split, got {len(distinct)}")
    random.Random(seed).shuffle(distinct)
    n_val = min(max(1, round(val_fraction * len(distinct))), len(distinct) - 1)
    val_keys = set(distinct[:n_val])
    train = [it for it, k in zip(items, keys, strict=True) if k not in val_keys]
    val = [it for it, k in zip(items, keys, strict=True) if k in val_keys]
    return train, val
