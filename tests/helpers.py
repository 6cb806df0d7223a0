"""Small shared builders for the fast tests."""

from __future__ import annotations

from newllm import ModelConfig, build_model


def tiny_config(**kw) -> ModelConfig:
    base = dict(vocab_size=64, embed_dim=8, context_dim=8, hidden_dim=16)
    base.update(kw)
    return ModelConfig(**base)


def tiny_model(seed: int = 0, **kw):
    return build_model(tiny_config(**kw), seed=seed)
