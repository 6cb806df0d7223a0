"""A third-party CVFP model written from scratch against newllm's protocol only (docs/verify.md):
a GRU-cell context update. It imports nothing from newllm.

For a token embedding ``e [..., E]`` and context ``c [..., C]``::

    z  = sigmoid(W_z e + U_z c + b_z)             # update gate
    r  = sigmoid(W_r e + U_r c + b_r)             # reset gate
    n  = tanh(W_n e + r * (U_n c + b_u))          # candidate
    c' = (1 - z) * dropout(n) + z * c

Check it with ``pytest examples`` (examples/test_gru_model.py) or
``newllm verify --model examples.gru_model:build`` from the repository root.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class GRUContextModel(nn.Module):
    """GRU-cell context update. ``vocab_size`` is the protocol's optional attribute (ids are validated)."""

    def __init__(
        self,
        vocab_size: int = 64,
        embed_dim: int = 16,
        context_dim: int = 16,
        dropout: float = 0.1,
        seed: int = 0,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.context_dim = context_dim
        self.dropout_p = dropout
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.input_gates = nn.Linear(embed_dim, 3 * context_dim)  # W_z | W_r | W_n, biases b_z | b_r | 0
        self.context_gates = nn.Linear(context_dim, 3 * context_dim)  # U_z | U_r | U_n, biases 0 | 0 | b_u
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, 1.0, generator=g)
            for lin in (self.input_gates, self.context_gates):
                bound = lin.in_features**-0.5
                lin.weight.uniform_(-bound, bound, generator=g)
                lin.bias.zero_()

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """``[...]`` int64 ids -> ``[..., E]`` on the model's device."""
        return self.embedding(token_ids.to(self.embedding.weight.device))

    def initial_context(self, shape: Sequence[int] | torch.Size) -> torch.Tensor:
        """Zeros ``[*shape, C]`` on the model's device and dtype."""
        w = self.embedding.weight
        return torch.zeros(*shape, self.context_dim, device=w.device, dtype=w.dtype)

    def step(
        self, token_emb: torch.Tensor, context: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[..., E], [..., C] -> [..., C]``; leading dims broadcast; dropout masks from ``generator``."""
        zi, ri, ni = self.input_gates(token_emb).chunk(3, dim=-1)
        zc, rc, nc = self.context_gates(context).chunk(3, dim=-1)
        z = torch.sigmoid(zi + zc)
        r = torch.sigmoid(ri + rc)
        n = torch.tanh(ni + r * nc)
        if self.training and self.dropout_p > 0:
            keep = torch.rand(n.shape, generator=generator, device=n.device, dtype=n.dtype) >= self.dropout_p
            n = n * keep / (1.0 - self.dropout_p)
        return (1 - z) * n + z * context


def build(seed: int = 0) -> GRUContextModel:
    """The factory ``newllm verify --model examples.gru_model:build`` calls (no arguments)."""
    return GRUContextModel(seed=seed)
