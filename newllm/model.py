"""The CVFP model: token embedding + LayerNorm, then blocks of FNN layers each ending in a gated update.

One block ``b`` with hidden layers ``W_1..W_n`` updates the context ``c`` (shape ``[..., C]``)::

    h  = Dropout(ReLU(W_n ... Dropout(ReLU(W_1 [e ; c]))))         # [..., H]
    c' = LayerNorm(sigmoid(W_f h) * c + sigmoid(W_i h) * tanh(W_d h))  # [..., C]

Sequential = one block of L layers ``(L,)``; Layer-wise = L blocks of one layer ``(1,)*L``.
:meth:`CVFPModel.step` is the only place this arithmetic lives: the forward pass, the solver and
Phase 1 training all call it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import torch
import torch.nn.functional as Fn
from torch import nn

from .config import ModelConfig
from .tokens import as_token_tensor


class Block(nn.Module):
    """``n_layers`` Linear+ReLU+Dropout layers, then one gated LayerNorm context update."""

    def __init__(self, in_dim: int, hidden_dim: int, context_dim: int, n_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * n_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        # forget | input | delta gates fused into one matmul: [..., H] -> [..., 3C]
        self.gates = nn.Linear(hidden_dim, 3 * context_dim)
        self.norm = nn.LayerNorm(context_dim)


class CVFPModel(nn.Module):
    """Context-vector fixed-point model. Build with :func:`build_model`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        self.embed_norm = nn.LayerNorm(c.embed_dim)
        self.blocks = nn.ModuleList(
            Block(c.embed_dim + c.context_dim, c.hidden_dim, c.context_dim, n) for n in c.blocks
        )

    @property
    def context_dim(self) -> int:
        return self.config.context_dim

    @property
    def vocab_size(self) -> int:
        """Token ids are validated against it (:mod:`newllm.protocol`)."""
        return self.config.vocab_size

    def block_list(self) -> list[Block]:
        """The blocks, first to last (a typed view of ``self.blocks``)."""
        return cast("list[Block]", list(self.blocks))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Weights ~ N(0, init_std²), biases 0, LayerNorm gain 1 / bias 0."""
        std = self.config.init_std
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear | nn.Embedding):
                    m.weight.normal_(0.0, std, generator=generator)
                    if isinstance(m, nn.Linear) and m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.LayerNorm):
                    m.weight.fill_(1.0)
                    m.bias.zero_()

    def embed(self, token_ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """``[...]`` int ids -> ``[..., E]`` LayerNorm'd token embeddings (ids validated)."""
        ids = as_token_tensor(token_ids, self.config.vocab_size).to(self.token_embedding.weight.device)
        return self.embed_norm(self.token_embedding(ids))

    def initial_context(self, shape: Sequence[int] | torch.Size) -> torch.Tensor:
        """Zeros ``[*shape, C]`` on the model's device and dtype (the seeds' reset context)."""
        w = self.token_embedding.weight
        return torch.zeros(*shape, self.config.context_dim, device=w.device, dtype=w.dtype)

    def step(
        self, token_emb: torch.Tensor, context: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One application of ``f(c, token)``: ``[..., E], [..., C] -> [..., C]``.

        Leading dims broadcast. In train mode dropout masks are drawn from ``generator``
        (the global RNG when None).
        """
        lead = torch.broadcast_shapes(token_emb.shape[:-1], context.shape[:-1])
        e = token_emb.expand(*lead, token_emb.shape[-1])
        c = context.expand(*lead, context.shape[-1])
        p = self.config.dropout if self.training else 0.0
        clamp = self.config.context_clamp
        for block in cast("Iterable[Block]", self.blocks):
            h = torch.cat([e, c], dim=-1)
            for layer in block.layers:
                # in place on the Linear output (autograd keeps Linear's inputs, not its output)
                h = _dropout(Fn.relu_(layer(h)), p, generator)
            forget, inp, delta = block.gates(h).chunk(3, dim=-1)
            c = block.norm((torch.sigmoid(forget) * c).add_(torch.sigmoid(inp) * torch.tanh(delta)))
            if clamp is not None:
                c = c.clamp(-clamp, clamp)
        return c

    def forward(self, token_ids: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """One update from ``context`` (zeros when None) for ``token_ids [...]`` -> ``[..., C]``."""
        e = self.embed(token_ids)
        c = self.initial_context(e.shape[:-1]) if context is None else context
        return self.step(e, c)


def _dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout whose mask comes from ``generator`` (so train-mode runs replay exactly)."""
    if p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


def build_model(
    config: ModelConfig | None = None, *, seed: int = 0, generator: torch.Generator | None = None
) -> CVFPModel:
    """A freshly initialised :class:`CVFPModel` (CPU, float32), deterministic in ``seed``/``generator``."""
    config = ModelConfig() if config is None else config
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    model = CVFPModel(config)
    model.reset_parameters(generator)
    return model
