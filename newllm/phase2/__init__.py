"""Phase 2: predict the next token from Phase 1's fixed-point contexts, beside count baselines."""

from .baselines import (
    baseline_scores,
    bigram_predict,
    bigram_scores,
    unigram_predict,
    unigram_probs,
    unigram_scores,
)
from .config import Phase2Config
from .generate import generate_ids, next_context, prompt_context
from .head import PredictionHead, build_head
from .pairs import Pairs, next_token_pairs
from .scores import Scores, scores
from .split import sample_keys, split_samples
from .trainer import Phase2Epoch, Phase2Run, evaluate, load_phase2, train_phase2

__all__ = [
    "Pairs",
    "Phase2Config",
    "Phase2Epoch",
    "Phase2Run",
    "PredictionHead",
    "Scores",
    "baseline_scores",
    "bigram_predict",
    "bigram_scores",
    "build_head",
    "evaluate",
    "generate_ids",
    "load_phase2",
    "next_context",
    "next_token_pairs",
    "prompt_context",
    "sample_keys",
    "scores",
    "split_samples",
    "train_phase2",
    "unigram_predict",
    "unigram_probs",
    "unigram_scores",
]
