"""The token-prediction head: a fixed-point context ``[..., C]`` -> next-token logits ``[..., V]``.

The context is first standardised with frozen per-dimension statistics, ``x = (c - mean) / scale``
(identity by default; Phase 2 sets them from the training contexts, see ``Phase2Config.standardize``).
Untied: ``logits = W x + b`` (``W [V, C]``, ``b [V]``). Tied (``tie=True``)::

    logits = (P x) @ E^T + b        P [E_dim, C] trained, b [V] trained, E [V, E_dim] frozen

where ``E`` is the Phase 1 model's token embedding matrix (raw ``token_embedding.weight``, before its
LayerNorm): the head scores each vocabulary entry by its embedding and does not change Phase 1's
weights. The frozen ``E`` is not part of the head's state dict; it comes from the Phase 1 model.
"""

from __future__ import annotations

import torch
from torch import nn

from ..model import CVFPModel


class PredictionHead(nn.Module):
    """``context [..., C] -> logits [..., V]``: standardise the context, then a linear map (tied: onto the
    token embedding, plus a bias)."""

    mean: torch.Tensor
    scale: torch.Tensor
    embedding: torch.Tensor

    def __init__(self, context_dim: int, vocab_size: int, embedding: torch.Tensor | None = None):
        super().__init__()
        self.tied = embedding is not None
        self.register_buffer("mean", torch.zeros(context_dim))
        self.register_buffer("scale", torch.ones(context_dim))
        if embedding is None:
            self.proj = nn.Linear(context_dim, vocab_size)
        else:
            if embedding.dim() != 2 or embedding.shape[0] != vocab_size:
                raise ValueError(
                    f"tied head: embedding must be [vocab_size={vocab_size}, E], got {tuple(embedding.shape)}"
                )
            self.proj = nn.Linear(context_dim, embedding.shape[1], bias=False)
            self.bias = nn.Parameter(torch.zeros(vocab_size))
            self.register_buffer("embedding", embedding.detach().clone(), persistent=False)

    def reset_parameters(self, generator: torch.Generator, std: float) -> None:
        """Weights ~ N(0, std²) from ``generator``, biases 0."""
        with torch.no_grad():
            self.proj.weight.normal_(0.0, std, generator=generator)
            if self.tied:
                self.bias.zero_()
            else:
                self.proj.bias.zero_()

    def set_standardization(self, contexts: torch.Tensor) -> None:
        """``mean``/``scale`` := per-dimension mean and std of ``contexts [N, C]`` (std floored at 1e-6)."""
        if contexts.dim() != 2 or contexts.shape[0] < 2 or contexts.shape[1] != self.mean.numel():
            raise ValueError(
                f"standardization needs contexts [N>=2, {self.mean.numel()}], got {tuple(contexts.shape)}"
            )
        x = contexts.double()
        self.mean.copy_(x.mean(0).to(self.mean.dtype))
        self.scale.copy_(x.std(0).clamp_min(1e-6).to(self.scale.dtype))

    def set_bias(self, bias: torch.Tensor) -> None:
        """Overwrite the output bias ``[V]``."""
        b = self.bias if self.tied else self.proj.bias
        if bias.shape != b.shape:
            raise ValueError(f"bias must have shape {tuple(b.shape)}, got {tuple(bias.shape)}")
        with torch.no_grad():
            b.copy_(bias.to(b.dtype))

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        x = (context - self.mean) / self.scale
        if self.tied:
            return self.proj(x) @ self.embedding.T + self.bias
        return self.proj(x)


def build_head(model: CVFPModel, *, tie: bool, seed: int = 0, std: float = 0.02) -> PredictionHead:
    """A freshly initialised head for ``model`` (tied to its token embedding when ``tie``)."""
    emb = model.token_embedding.weight if tie else None
    head = PredictionHead(model.config.context_dim, model.config.vocab_size, emb)
    head.reset_parameters(torch.Generator().manual_seed(seed), std)
    return head
