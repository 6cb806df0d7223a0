"""newllm: the reference toolkit for context-vector fixed-point (CVFP) language models."""

from . import contraction, diagnostics, metrics
from .config import ModelConfig, SolverConfig
from .model import CVFPModel, build_model
from .result import FixedPointResult
from .solve import solve
from .solvers import SOLVERS, iterate
from .stop import Status, StopRule, stop
from .tokens import spread_token_ids

__all__ = [
    "CVFPModel",
    "FixedPointResult",
    "ModelConfig",
    "SOLVERS",
    "Status",
    "StopRule",
    "SolverConfig",
    "build_model",
    "contraction",
    "diagnostics",
    "iterate",
    "metrics",
    "solve",
    "spread_token_ids",
    "stop",
]
__version__ = "0.1.0"
