"""newllm: the reference toolkit for context-vector fixed-point (CVFP) language models."""

from . import contraction, diagnostics, metrics
from .config import ModelConfig, SolverConfig
from .fixed_point import iterate
from .model import CVFPModel, build_model
from .result import STATUS_NAMES, FixedPointResult
from .solve import solve
from .tokens import spread_token_ids

__all__ = [
    "CVFPModel",
    "FixedPointResult",
    "ModelConfig",
    "STATUS_NAMES",
    "SolverConfig",
    "build_model",
    "contraction",
    "diagnostics",
    "iterate",
    "metrics",
    "solve",
    "spread_token_ids",
]
__version__ = "0.1.0"
