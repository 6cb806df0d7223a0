"""Every Hypothesis strategy of the property suite.

Tensors come from ``hypothesis.extra.numpy`` (so they shrink), or from a drawn integer seed fed to an
explicit ``torch.Generator`` (so a failure replays from the seed printed in the falsifying example).
Hypothesis never seeds torch's global RNG, so nothing here draws from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import hypothesis.extra.numpy as hnp
import numpy as np
import torch
from hypothesis import strategies as st

from newllm import ModelConfig, SolverConfig, build_model
from newllm.metrics import METRICS

#: Entry magnitudes of metric tensors: zero, or ``lo <= |x| <= hi`` (powers of two, exact in both widths).
#: ``hi`` keeps ``D (2 hi)^2`` finite for ``D <= MAX_DIM`` (float32 max 3.4e38, float64 1.8e308);
#: ``lo^2`` is a normal number (float32 tiny 1.2e-38, float64 2.2e-308).
MAGNITUDE = {torch.float32: (2.0**-50, 2.0**50), torch.float64: (2.0**-500, 2.0**500)}
MAX_DIM = 300
NUMPY = {torch.float32: np.float32, torch.float64: np.float64}
WIDTH = {torch.float32: 32, torch.float64: 64}

seeds = st.integers(min_value=0, max_value=2**32 - 1)
float_dtypes = st.sampled_from([torch.float32, torch.float64])
metric_names = st.sampled_from(list(METRICS))
exact_metric_names = st.sampled_from(["mse", "l2", "rms"])


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats spread evenly in log scale over ``[lo, hi]``."""
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


def _signed_magnitudes(dtype: torch.dtype) -> st.SearchStrategy[float]:
    lo, hi = MAGNITUDE[dtype]
    mag = st.floats(lo, hi, width=WIDTH[dtype])
    return st.one_of(st.just(0.0), mag, mag.map(lambda x: -x))


@st.composite
def residual_pairs(draw, max_dim: int = MAX_DIM) -> tuple[torch.Tensor, torch.Tensor]:
    """``(new, old)``: finite tensors ``[*lead, D]`` (0-3 lead dims of size <= 4), float32 or float64,
    entries zero or of magnitude in ``MAGNITUDE[dtype]``."""
    dtype = draw(float_dtypes)
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    d = draw(st.integers(1, max_dim))
    elems = _signed_magnitudes(dtype)
    shape = (*lead, d)
    new = draw(hnp.arrays(NUMPY[dtype], shape, elements=elems))
    old = draw(hnp.arrays(NUMPY[dtype], shape, elements=elems))
    return torch.from_numpy(new), torch.from_numpy(old)


@st.composite
def structures(draw, max_blocks: int = 3, max_layers: int = 3) -> tuple[int, ...]:
    """Layers per block: Sequential ``(L,)``, Layer-wise ``(1,)*L`` or mixed, e.g. ``(2, 1, 3)``."""
    kind = draw(st.sampled_from(["sequential", "layerwise", "mixed"]))
    if kind == "sequential":
        return (draw(st.integers(1, max_layers)),)
    if kind == "layerwise":
        return (1,) * draw(st.integers(1, max_blocks))
    return tuple(draw(st.lists(st.integers(1, max_layers), min_size=2, max_size=max_blocks)))


@st.composite
def model_configs(
    draw,
    *,
    max_dim: int = 24,
    dropout: st.SearchStrategy[float] | None = None,
    clamp: bool = True,
) -> ModelConfig:
    """Small models of any structure: dims 1..max_dim, vocab 2..64, init_std 0.02..1."""
    return ModelConfig(
        structure=draw(structures()),
        vocab_size=draw(st.integers(2, 64)),
        embed_dim=draw(st.integers(1, max_dim)),
        context_dim=draw(st.integers(1, max_dim)),
        hidden_dim=draw(st.integers(1, max_dim)),
        dropout=draw(dropout if dropout is not None else st.sampled_from([0.0, 0.1, 0.5])),
        init_std=draw(st.sampled_from([0.02, 0.1, 0.3, 1.0])),
        context_clamp=draw(st.one_of(st.none(), st.floats(0.5, 3.0))) if clamp else None,
    )


def token_ids(vocab_size: int, min_tokens: int = 1, max_tokens: int = 12) -> st.SearchStrategy[torch.Tensor]:
    """int64 ids ``[n]`` in ``[0, vocab_size)``, repeats allowed."""
    shape = st.integers(min_tokens, max_tokens)
    return hnp.arrays(np.int64, shape, elements=st.integers(0, vocab_size - 1)).map(torch.from_numpy)


@dataclass
class ModelCase:
    """A drawn model, its seed and a batch of token ids."""

    config: ModelConfig
    seed: int
    ids: torch.Tensor

    def build(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        return build_model(self.config, seed=self.seed).to(device=device, dtype=dtype).eval()


@st.composite
def model_cases(draw, *, max_tokens: int = 12, min_tokens: int = 1, **config_kw) -> ModelCase:
    cfg = draw(model_configs(**config_kw))
    ids = draw(token_ids(cfg.vocab_size, min_tokens, max_tokens))
    return ModelCase(cfg, draw(seeds), ids)


@st.composite
def solver_configs(draw, *, max_iterations: int = 30, **fixed) -> SolverConfig:
    """Plain-iteration solver settings: any metric, a threshold spanning 'never' to 'at once', warmup."""
    kw = dict(
        metric=draw(metric_names),
        threshold=draw(log_uniform(1e-8, 1.0)),
        max_iterations=draw(st.integers(2, max_iterations)),
        divergence_factor=None,
    )
    kw["warmup"] = draw(st.integers(0, kw["max_iterations"] - 1))
    kw.update(fixed)
    return SolverConfig(**kw)


# ---------------------------------------------------------------- known-answer maps (float64)


def _orthogonal(d: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


@dataclass
class AffineMap:
    """``f(z) = z @ A.T + b`` with ``A`` normal (``A = Q diag(lam) Q.T``, or ``rho * Q``).

    ``rho`` is the spectral radius of ``A``; for a normal matrix it equals ``||A||_2``, so
    ``||A^k v|| <= rho^k ||v||`` exactly, with equality for every ``v`` when ``exact``."""

    a: torch.Tensor
    b: torch.Tensor
    z0: torch.Tensor
    rho: float
    eigenvalues: torch.Tensor | None  # None for rho * orthogonal (every |lambda| = rho)
    exact: bool

    def __call__(self, z: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        b = self.b if rows is None else self.b[rows]
        return z @ self.a.T + b

    @property
    def fixed_point(self) -> torch.Tensor:
        eye = torch.eye(self.a.shape[0], dtype=self.a.dtype)
        return torch.linalg.solve(eye - self.a, self.b.T).T


@st.composite
def affine_maps(
    draw, rho: st.SearchStrategy[float], *, max_dim: int = 8, max_rows: int = 5, exact: bool | None = None
) -> AffineMap:
    """Rows ``[N, D]`` of one normal affine map with a drawn spectral radius ``rho``; ``exact`` forces
    (True) or forbids (False) the ``rho * Q`` form, None draws it."""
    d = draw(st.integers(1, max_dim))
    n = draw(st.integers(1, max_rows))
    r = draw(rho)
    g = generator(draw(seeds))
    q = _orthogonal(d, g)
    exact = draw(st.booleans()) if exact is None else exact
    if exact:  # rho * orthogonal: every eigenvalue has modulus rho
        a, lam = r * q, None
    else:  # symmetric with eigenvalues in [-rho, rho], one of them at +-rho
        lam = (torch.rand(d, generator=g, dtype=torch.float64) * 2 - 1) * r
        lam[0] = r * draw(st.sampled_from([1.0, -1.0]))
        a = q @ torch.diag(lam) @ q.T
    scale = draw(log_uniform(1e-2, 1e3))
    b = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    z0 = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    return AffineMap(a, b, z0, r, lam, exact)
