"""Training samples: a source's split, optionally shuffled and cut to N conversations, encoded as ChatML."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chatml import DEFAULT_MAX_LENGTH, EncodedConversation, check_max_length, encode_records
from .source import ResolvedSource, load_resolved, resolve_source
from .tokenizer import load_tokenizer


@dataclass(frozen=True)
class Samples:
    """Encoded conversations of one split, with where they came from."""

    source: ResolvedSource
    max_length: int | None
    seed: int | None
    #: Conversations in the split (before taking ``samples``).
    available: int
    conversations: tuple[EncodedConversation, ...]
    #: Seconds spent resolving/building + ``load_dataset``, and encoding.
    load_seconds: float
    encode_seconds: float

    def __len__(self) -> int:
        return len(self.conversations)

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.conversations]

    @property
    def input_ids(self) -> list[list[int]]:
        """One token-id list per conversation (what Phase 1 trains on)."""
        return [c.input_ids for c in self.conversations]

    @property
    def loss_masks(self) -> list[list[int]]:
        return [c.loss_mask for c in self.conversations]

    @property
    def num_tokens(self) -> int:
        return sum(len(c.input_ids) for c in self.conversations)


def load_samples(
    source: str = "ultrachat",
    split: str = "train_sft",
    samples: int | None = None,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    seed: int | None = None,
    *,
    tokenizer: Any = None,
    cache: str | Path | None = None,
    progress: Callable[[int, int | None, str], None] | None = None,
) -> Samples:
    """The first ``samples`` conversations of ``source``/``split`` (all when None), encoded.

    ``seed=None`` keeps the split's stored order (for ``ultrachat`` already a seeded shuffle);
    an integer first shuffles with ``Dataset.shuffle(seed=seed)``. ``max_length=None`` disables
    truncation. ``tokenizer`` defaults to :func:`~newllm.data.tokenizer.load_tokenizer`. ``progress``
    is called as ``progress(done, total, stage)``: ``(0, None, "load")`` before loading, then by
    :func:`~newllm.data.chatml.encode_records` per batch of encoded conversations.
    """
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise ValueError(f"samples must be a positive integer or None (all), got {samples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None (stored order), got {seed!r}")
    check_max_length(max_length)
    t0 = time.perf_counter()
    if progress is not None:
        progress(0, None, "load")
    src = resolve_source(source, split, cache)
    ds = load_resolved(src, cache)
    available = len(ds)
    if samples is not None and samples > available:
        raise ValueError(
            f"samples={samples} but split {split!r} of source {source!r} has only {available} conversations"
        )
    if seed is not None:
        ds = ds.shuffle(seed=seed)
    if samples is not None:
        ds = ds.select(range(samples))
    records = ds.to_list()
    t1 = time.perf_counter()
    tok = load_tokenizer(cache) if tokenizer is None else tokenizer
    encoded = encode_records(records, tok, max_length, progress=progress)
    t2 = time.perf_counter()
    return Samples(src, max_length, seed, available, tuple(encoded), t1 - t0, t2 - t1)
