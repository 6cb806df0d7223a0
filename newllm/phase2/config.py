"""``Phase2Config``: settings of the token-prediction head trained on Phase 1 contexts, strictly validated."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _fields as F
from ..config import DictIO


@dataclass(frozen=True)
class Phase2Config(DictIO):
    """Next-token prediction from fixed-point contexts (Adam, seeded, deterministic on CPU).

    The target of the context at position ``t`` is token ``t + 1`` of the same conversation.
    """

    epochs: int = 5
    learning_rate: float = 3e-4
    #: (context, target) pairs per optimizer step.
    batch_size: int = 256
    #: Fraction of conversations held out for validation (at least one on each side).
    val_fraction: float = 0.1
    #: Seed of the conversation split (kept apart from ``seed`` so the split does not move with it).
    split_seed: int = 0
    #: Seed of the head's initialisation and of the per-epoch shuffle.
    seed: int = 0
    #: ``logits = W_proj(c) @ E^T + b`` with ``E`` the frozen Phase 1 token embedding; else ``Linear(C, V)``.
    tie: bool = False
    #: Count only targets whose assistant-only loss mask is 1 (needs the run's data.json); default all.
    assistant_only: bool = False
    #: Standardise contexts per dimension with the training contexts' mean and std (frozen, part of the head).
    #: Fixed-point contexts share a large common component (mean pairwise cosine ~0.99 after Phase 1), which
    #: leaves a linear head on raw contexts near the unigram for many epochs.
    standardize: bool = True
    #: Start the head's bias at the log of the training split's unigram (``baselines.unigram_probs``), so
    #: epoch 0 is the unigram baseline; else 0 (a uniform start, ``ln V`` nats).
    unigram_bias: bool = True
    #: Std of the normal initialisation of the head's weight matrix (biases start at 0).
    init_std: float = 0.02
    #: Max gradient norm (``clip_grad_norm_``); None disables clipping.
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        F.check_int("epochs", self.epochs, 1, 1_000_000)
        F.check_float("learning_rate", self.learning_rate, 0.0, 10.0, lo_open=True)
        F.check_int("batch_size", self.batch_size, 1, 10_000_000)
        F.check_float("val_fraction", self.val_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        F.check_int("split_seed", self.split_seed, 0, 2**63 - 1)
        F.check_int("seed", self.seed, 0, 2**63 - 1)
        F.check_bool("tie", self.tie)
        F.check_bool("assistant_only", self.assistant_only)
        F.check_bool("standardize", self.standardize)
        F.check_bool("unigram_bias", self.unigram_bias)
        F.check_float("init_std", self.init_std, 0.0, 10.0, lo_open=True)
        if self.grad_clip is not None:
            F.check_float("grad_clip", self.grad_clip, 0.0, None, lo_open=True)

