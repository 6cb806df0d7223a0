"""Deliberately broken CVFP models, each a known bug that one named check of ``newllm.testing`` must
catch (tests/test_check_model.py). Each wraps a healthy tiny built-in model (``healthy()``, which
passes every check) and changes one thing; the factories also serve ``newllm verify --model``."""

from __future__ import annotations

import torch
import torch.nn.functional as Fn
from torch import nn

from newllm import ModelConfig, build_model

CONFIG = ModelConfig(arch="layerwise", vocab_size=64, embed_dim=8, context_dim=8, hidden_dim=16)
#: ids whose embedding rows ``nan_tokens`` leaves uninitialised (NaN): every id = 3 mod 10.
NAN_IDS = tuple(range(3, 64, 10))


def healthy(seed: int = 0):
    return build_model(CONFIG, seed=seed)


class Wrapped(nn.Module):
    """Delegates the protocol to a built-in model; subclasses change ``step``."""

    def __init__(self, base: nn.Module | None = None):
        super().__init__()
        self.base = healthy() if base is None else base
        self.vocab_size = self.base.vocab_size

    def embed(self, token_ids):
        return self.base.embed(token_ids)

    def initial_context(self, shape):
        return self.base.initial_context(shape)

    def step(self, token_emb, context, *, generator=None):
        return self.base.step(token_emb, context, generator=generator)


class BatchStatistics(Wrapped):
    """Normalises each context entry over the batch axis (BatchNorm statistics in eval mode)."""

    def step(self, token_emb, context, *, generator=None):
        out = super().step(token_emb, context, generator=generator)
        mean = out.mean(dim=0, keepdim=True)
        var = out.var(dim=0, unbiased=False, keepdim=True)
        return (out - mean) / (var + 1e-5).sqrt()


class EvalDropout(Wrapped):
    """Functional dropout with ``training=True`` hard-coded: random in eval mode too."""

    def step(self, token_emb, context, *, generator=None):
        return Fn.dropout(super().step(token_emb, context, generator=generator), p=0.1, training=True)


class HalfPrecision(Wrapped):
    """A float16 round trip of every update when run in float32 (an autocast left on)."""

    def step(self, token_emb, context, *, generator=None):
        out = super().step(token_emb, context, generator=generator)
        return out.half().float() if out.dtype == torch.float32 else out


def batch_statistics():
    return BatchStatistics()


def eval_dropout():
    return EvalDropout()


def half_precision():
    return HalfPrecision()


def nan_tokens():
    """Embedding rows of :data:`NAN_IDS` left uninitialised (NaN)."""
    model = healthy()
    with torch.no_grad():
        model.token_embedding.weight[list(NAN_IDS)] = float("nan")
    return model


def ignores_token():
    """The token's part of every block's first layer zeroed: every token iterates the same map (gate
    biases drawn at random, as after training, so that the shared fixed point is not zero)."""
    model = healthy()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for block in model.blocks:
            block.layers[0].weight[:, : CONFIG.embed_dim] = 0.0
            block.gates.bias.copy_(torch.randn(block.gates.bias.shape, generator=g))
    return model


class Bistable(nn.Module):
    """``c' = tanh(2 c + 0.2 e)`` entrywise: two stable fixed points per entry (σ_max < 1 at each, so it
    passes ``contraction``), which a start far from zero on the other side reaches: not unique."""

    vocab_size = 64

    def __init__(self, dim: int = 8):
        super().__init__()
        self.table = nn.Embedding(self.vocab_size, dim)
        with torch.no_grad():
            self.table.weight.copy_(
                torch.randn(self.vocab_size, dim, generator=torch.Generator().manual_seed(0))
            )

    def embed(self, token_ids):
        return self.table(token_ids.to(self.table.weight.device))

    def initial_context(self, shape):
        w = self.table.weight
        return torch.zeros(*shape, w.shape[1], device=w.device, dtype=w.dtype)

    def step(self, token_emb, context):
        return torch.tanh(2 * context + 0.2 * token_emb)


def bistable():
    return Bistable()
