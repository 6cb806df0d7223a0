"""Family 3's two tiny trained models, their tokens, and exact contraction numbers at their fixed points.

* ``contractive``: Layer-wise, dims 32, vocab 64, init_std 0.3, trained with the matrix's ``jacobian``
  recipe (``newllm.matrix.RECIPES``: 5 epochs at lr 3e-3 with ``jacobian_weight`` 1.0, threshold 0.01
  mse, <= 50 inner iterations, clip 1.0, dropout 0.1) and the batched loop on 16 distinct tokens. Over seeds 0-5 this gave max σ_max 0.72-0.85 at the
  fixed points, max pairwise cosine <= 0.98 and effective rank 8-11 (no collapse). The same recipe on
  Sequential gave σ_max > 1 for 2 of 6 seeds, so it is not used; smaller learning rates left σ_max
  near 1, larger weights or more epochs collapsed the contexts (max cosine -> 1).
* ``seeds``: the same shape at the seeds' init (0.02) trained with recipe ``001`` (the seeds' Phase 1
  settings: 3 epochs, lr 1e-4, jacobian_weight 0) and the spec loop.

Both are trained once per code version through the matrix cache (``newllm.matrix.build``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from newllm import SolverConfig, build_model, solve
from newllm.matrix import ModelSpec, build, model_config, token_ids
from properties import exact

TOKENS = 16
VOCAB = 64
DIMS = {"vocab_size": VOCAB, "embed_dim": 32, "context_dim": 32, "hidden_dim": 32}
SEED = 0
#: name -> (ModelConfig overrides, matrix recipe, Phase 1 loop), all Layer-wise at seed 0.
MODELS = {
    "contractive": ({**DIMS, "init_std": 0.3}, "jacobian", "batched"),
    "seeds": (DIMS, "001", "spec"),
}


def spec(name: str) -> ModelSpec:
    """The matrix model ``name``: trained on :func:`trained_tokens` (one sample)."""
    overrides, recipe, loop = MODELS[name]
    ids = tuple(trained_tokens(SEED).tolist())
    return ModelSpec(
        model_config("layerwise", **overrides), seed=SEED, recipe=recipe, samples=(ids,), loop=loop
    )


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
    """The ``distinct`` token set of the matrix: ``TOKENS`` distinct ids of ``VOCAB``."""
    return torch.tensor(token_ids("distinct", TOKENS, VOCAB, seed=seed))


def load(name: str, cache_root: str | Path | None) -> Trained:
    ids = trained_tokens(SEED)
    model = build(spec(name), cache_root).model.eval()
    m64 = build_model(model.config).double().eval()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    ref = solve(
        m64,
        ids,
        SolverConfig(metric="l2", threshold=REFERENCE_TOL, max_iterations=5000, record_trace=True),
    )
    sigma, rho = (v.detach() for v in exact.spectrum(exact.jacobians(m64, ids, ref.context)))
    return Trained(model, m64, ids, ref.context, ref.converged, sigma, rho, ref.trace["l2"])
