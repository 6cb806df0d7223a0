"""The ``dialogue`` token set: real dialogue for the notes' 512-token experiments ("a full UltraChat sample").

The offline corpus of :mod:`newllm.data` (human conversations in UltraChat's schema), ``train_sft`` in
its stored order: the first conversation with at least ``n`` tokens, ChatML-encoded with the GPT-2
tokenizer, cut to its first ``n`` tokens. Needs the ``data`` extra; the ids are part of a task's
conditions, so a changed corpus or tokenizer makes a resumed run measure again.
"""

from __future__ import annotations

from functools import lru_cache

#: Conversations scanned for one long enough (the corpus's are 50..2000 tokens long).
SCAN = 200


@lru_cache(maxsize=4)
def dialogue_ids(n: int) -> tuple[int, ...]:
    """The first ``n`` token ids of the first conversation with at least ``n`` tokens."""
    from ..data import load_samples  # the data extra

    samples = load_samples("ultrachat", "train_sft", samples=SCAN, max_length=None)
    for conv in samples.conversations:
        if len(conv.input_ids) >= n:
            return tuple(int(t) for t in conv.input_ids[:n])
    raise ValueError(f"none of the first {SCAN} conversations of the offline corpus has {n} tokens")
