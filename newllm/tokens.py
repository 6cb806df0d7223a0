"""Token-id helpers: validation with clear errors, and the documented ``--tokens N`` spread."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def spread_token_ids(n: int, vocab_size: int) -> list[int]:
    """The ``--tokens N`` ids: ``(i + 1) * stride`` for ``i < n``, ``stride = min(100, (vocab_size - 1) // n)``.

    For ``n <= 502`` at the default vocabulary this is 100, 200, ..., 100·n (seed 000/001's
    ``[100, ..., 1000]`` for 10 tokens); for 512 tokens the stride is 98.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"token count must be a positive integer, got {n!r}")
    if n > vocab_size - 1:
        raise ValueError(f"token count must be at most vocab_size - 1 = {vocab_size - 1}, got {n}")
    stride = min(100, (vocab_size - 1) // n)
    return [(i + 1) * stride for i in range(n)]


def as_token_tensor(token_ids: torch.Tensor | Sequence[int] | int, vocab_size: int | None) -> torch.Tensor:
    """Validate ids and return an int64 tensor.

    Raises ``ValueError`` for an empty input, a non-integer dtype or value, or an id outside
    ``[0, vocab_size)`` (``[0, inf)`` when ``vocab_size`` is None), naming the first offending value
    and its position.
    """
    if isinstance(token_ids, torch.Tensor):
        t = token_ids
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"token ids must be integers, got a tensor of dtype {t.dtype}")
    else:
        values = [token_ids] if isinstance(token_ids, int) else list(token_ids)
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"token ids must be integers; position {i} holds {v!r} ({type(v).__name__})")
        t = torch.tensor(values, dtype=torch.long)
    if t.numel() == 0:
        raise ValueError("token ids are empty: give at least one token")
    t = t.long()
    bad = (t < 0) if vocab_size is None else (t < 0) | (t >= vocab_size)
    if bool(bad.any()):
        idx = int(bad.flatten().nonzero()[0])
        bound = "0 <= id" if vocab_size is None else f"0 <= id < {vocab_size}"
        raise ValueError(f"token id {int(t.flatten()[idx])} at position {idx} is out of range: expected {bound}")
    return t
