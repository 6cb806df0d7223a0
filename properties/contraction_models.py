"""Family 3's two tiny trained models, their tokens, and exact contraction numbers at their fixed points.

* ``CONTRACTIVE``: Layer-wise, dims 32, vocab 64, init_std 0.3, trained with the batched Phase 1 loop
  for 5 epochs at lr 3e-3 with ``jacobian_weight`` 1.0 (tolerance 0.01 mse, <= 50 inner iterations,
  clip 1.0, dropout 0.1) on 16 distinct tokens. Over seeds 0-5 this gave max σ_max 0.72-0.85 at the
  fixed points, max pairwise cosine <= 0.98 and effective rank 8-11 (no collapse). The same recipe on
  Sequential gave σ_max > 1 for 2 of 6 seeds, so it is not used; smaller learning rates left σ_max
  near 1, larger weights or more epochs collapsed the contexts (max cosine -> 1).
* ``SEEDS``: the same shape at the seeds' init (0.02) trained with the seeds' Phase 1 settings
  (``Phase1Config()``: spec loop, 3 epochs, lr 1e-4, jacobian_weight 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from newllm import ModelConfig, SolverConfig, build_model, solve
from newllm.phase1 import Phase1Config, train_phase1
from properties import exact
from properties.trained import cached_model

TOKENS = 16
VOCAB = 64
RECIPES = {
    "contractive": {
        "model": ModelConfig(
            arch="layerwise", vocab_size=VOCAB, embed_dim=32, context_dim=32, hidden_dim=32, init_std=0.3
        ).to_dict(),
        "phase1": Phase1Config(loop="batched", epochs=5, learning_rate=3e-3, jacobian_weight=1.0).to_dict(),
        "seed": 0,
    },
    "seeds": {
        "model": ModelConfig(
            arch="layerwise", vocab_size=VOCAB, embed_dim=32, context_dim=32, hidden_dim=32
        ).to_dict(),
        "phase1": Phase1Config().to_dict(),
        "seed": 0,
    },
}
#: The float64 reference fixed point: l2 residual below this (Picard, plenty of iterations).
REFERENCE_TOL = 1e-11


@dataclass
class Trained:
    model: torch.nn.Module  # float32, eval
    model64: torch.nn.Module  # float64 copy, eval
    ids: torch.Tensor  # [TOKENS] the trained tokens
    fixed: torch.Tensor  # [TOKENS, C] float64 reference fixed points (NaN rows where not found)
    found: torch.Tensor  # [TOKENS] bool: reference converged
    sigma: torch.Tensor  # [TOKENS] exact σ_max at the fixed point
    rho: torch.Tensor  # [TOKENS] exact ρ at the fixed point
    trace: torch.Tensor  # [K, TOKENS] l2 residuals of the reference solve from zeros


def trained_tokens(seed: int) -> torch.Tensor:
    return torch.randperm(VOCAB, generator=torch.Generator().manual_seed(seed))[:TOKENS]


def load(name: str, cache_root: str | Path) -> Trained:
    recipe = RECIPES[name]
    ids = trained_tokens(recipe["seed"])

    def train():
        m = build_model(ModelConfig.from_dict(recipe["model"]), seed=recipe["seed"])
        train_phase1(m, [ids.tolist()], Phase1Config.from_dict(recipe["phase1"]), progress=False)
        return m

    model = cached_model(cache_root, {"family": 3, "name": name, **recipe}, train).eval()
    m64 = build_model(model.config).double().eval()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    ref = solve(
        m64,
        ids,
        SolverConfig(metric="l2", threshold=REFERENCE_TOL, max_iterations=5000, record_trace=True),
    )
    sigma, rho = (v.detach() for v in exact.spectrum(exact.jacobians(m64, ids, ref.context)))
    return Trained(model, m64, ids, ref.context, ref.converged, sigma, rho, ref.trace["l2"])
