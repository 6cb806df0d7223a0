"""Phase 1: train the weights so that iterating ``model.step`` reaches fixed points (seed 004)."""

from .config import Phase1Config
from .loops import Phase1Divergence, recipe_loss, train_group
from .penalties import hutchinson_jacobian
from .trainer import EpochStats, Phase1Run, TokenRecord, make_optimizer, train_phase1

__all__ = [
    "EpochStats",
    "Phase1Config",
    "Phase1Divergence",
    "Phase1Run",
    "TokenRecord",
    "hutchinson_jacobian",
    "make_optimizer",
    "recipe_loss",
    "train_group",
    "train_phase1",
]
