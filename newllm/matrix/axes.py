"""The axes of the experiment matrix: architectures, recipes, token sets and decision rules.

Every experiment in the project (``newllm reproduce``, the convergence-regression properties, the
benchmarks) picks its values from these four registries and from a list of seeds; nothing else
defines an architecture, a Phase 1 recipe, a token set or a decision rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import ModelConfig, SolverConfig
from ..metrics import convert_threshold
from ..phase1 import Phase1Config
from ..tokens import spread_token_ids
from .dialogue import dialogue_ids

#: name -> ModelConfig fields of the architecture (dims, vocabulary, dropout: ModelConfig's defaults,
#: the seeds' 256/256/256, 50,259, 0.1, unless a caller overrides them).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "sequential": {"arch": "sequential"},  # one block of 2 layers: structure (2,)
    "layerwise": {"arch": "layerwise"},  # two blocks of 1 layer: structure (1, 1)
    "mixed": {"structure": (2, 2)},  # two blocks of 2 layers
}
#: The two architectures the seed notes study (reproduce and family 4 run these).
NOTES_ARCHITECTURES = ("sequential", "layerwise")


def model_config(arch: str, **overrides: Any) -> ModelConfig:
    """The :class:`ModelConfig` of architecture ``arch`` with ``overrides`` (e.g. dims, ``context_clamp``)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    return ModelConfig(**ARCHITECTURES[arch], **overrides)


#: Recipe variants: ``plain`` trains a CVFPModel with ``train_phase1``; ``inject`` trains an
#: :class:`~newllm.recipes.inject.InjectedModel` (the previous token's fixed point as an input).
VARIANTS = ("plain", "inject")


@dataclass(frozen=True)
class Recipe:
    """A named set of Phase 1 settings; ``settings is None`` for the untrained recipe. The loop, the
    seed and the batch size are chosen by the experiment (:meth:`phase1`); gradient clipping is 1.0
    unless the settings say otherwise."""

    name: str
    settings: dict[str, Any] | None
    about: str
    variant: str = "plain"

    @property
    def trained(self) -> bool:
        return self.settings is not None

    def phase1(self, *, loop: str, seed: int, batch_samples: int = 1, **overrides: Any) -> Phase1Config:
        """The Phase1Config of this recipe; ``overrides`` replace settings (e.g. fewer ``epochs``)."""
        if self.settings is None:
            raise ValueError(f"recipe {self.name!r} does not train")
        settings = {"grad_clip": 1.0, **self.settings, **overrides}
        return Phase1Config(**settings, loop=loop, seed=seed, batch_samples=batch_samples)


#: The seed notes' reported Phase 1 settings (001/002; Phase1Config's defaults).
SEEDS = {"epochs": 3, "learning_rate": 1e-4, "max_iterations": 50, "threshold": 0.01, "warmup": 0}
#: The schedule of the contraction recipes (docs/recipes.md): 20 epochs at lr 1e-3, mse threshold 1e-4.
SCHEDULE = {"epochs": 20, "learning_rate": 1e-3, "max_iterations": 30, "threshold": 1e-4, "warmup": 0}
_JAC = {"jacobian_weight": 0.1}
_HINGE = {"sigma_weight": 1.0, "sigma_margin": 0.9, "sigma_iterations": 3}
_SPECTRAL = {"spectral_scale": 0.9}
_VC = {"variance_weight": 1.0, "covariance_weight": 0.1}


def _recipe(name: str, about: str, *parts: dict[str, Any], variant: str = "plain") -> Recipe:
    settings: dict[str, Any] = dict(SCHEDULE)
    for part in parts:
        settings.update(part)
    return Recipe(name, settings, about, variant)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("untrained", None, "the initial weights (build_model(config, seed))"),
        Recipe("001", SEEDS, "the seeds' reported Phase 1 settings (001/002; Phase1Config's defaults)"),
        Recipe("seeds", SEEDS, "the seed notes' settings (same as 001): 3 epochs, lr 1e-4, mse < 0.01"),
        Recipe(
            "001-noclip",
            {
                "epochs": 3,
                "learning_rate": 1e-4,
                "max_iterations": 50,
                "threshold": 0.01,
                "warmup": 0,
                "grad_clip": None,
            },
            "the 001 recipe without gradient clipping (004's clipping claim)",
        ),
        Recipe(
            "004",
            {"epochs": 5, "learning_rate": 1e-4, "max_iterations": 200, "threshold": 0.01, "warmup": 10},
            "spec 004's hyperparameters",
        ),
        Recipe(
            "jacobian",
            {
                "epochs": 5,
                "learning_rate": 3e-3,
                "max_iterations": 50,
                "threshold": 0.01,
                "warmup": 0,
                "jacobian_weight": 1.0,
            },
            "Jacobian-regularised (Bai et al., 2021): trains a small model to contract (property family 3)",
        ),
        _recipe(
            "jacobian-light", "the schedule + Hutchinson ||J||_F^2/D at weight 0.1 (issue 18's run)", _JAC
        ),
        _recipe("sigma-hinge", "the schedule + relu(σ̂ - 0.9)^2 (σ̂: 3 power iterations)", _HINGE),
        _recipe("spectral", "the schedule + σ_max of the weights acting on c capped at 0.9", _SPECTRAL),
        _recipe("vc", "the schedule + VICReg variance (1.0) and covariance (0.1) of the contexts", _VC),
        _recipe("jacobian+vc", "jacobian-light + vc", _JAC, _VC),
        _recipe("sigma-hinge+vc", "sigma-hinge + vc", _HINGE, _VC),
        _recipe("spectral+vc", "spectral + vc", _SPECTRAL, _VC),
        _recipe("spectral+sigma-hinge+vc", "spectral + sigma-hinge + vc", _SPECTRAL, _HINGE, _VC),
        _recipe(
            "inject+sigma-hinge+vc",
            "sigma-hinge + vc on the input-injection variant (previous fixed point as an input)",
            _HINGE,
            _VC,
            variant="inject",
        ),
    )
}

#: Recipes of the seed reproduction only (``seeds`` stands for them in the benchmark).
REPRODUCTION_RECIPES = ("001", "001-noclip", "004")
#: The recipes ``newllm recipes`` benchmarks (every trained recipe but the reproduction's).
BENCHMARK_RECIPES = tuple(n for n, r in RECIPES.items() if r.trained and n not in REPRODUCTION_RECIPES)


#: Token-set kinds: ``spread`` 100, 200, ... (``spread_token_ids``; seeds 000/001), ``first`` 0 .. n-1
#: (seed 002), ``random`` n ids uniform over the vocabulary (repeats possible), ``distinct`` n distinct
#: ids (a random permutation's prefix); the random kinds from ``torch.Generator().manual_seed(seed)``;
#: ``dialogue`` the first n tokens of a real conversation (:mod:`newllm.matrix.dialogue`; the data
#: extra and the GPT-2 + ChatML vocabulary).
TOKEN_SETS = ("spread", "first", "random", "distinct", "dialogue")


def token_ids(kind: str, n: int, vocab_size: int, *, seed: int = 0) -> list[int]:
    """The ``n`` token ids of token set ``kind`` (:data:`TOKEN_SETS`) for a vocabulary of ``vocab_size``."""
    if kind == "spread":
        return spread_token_ids(n, vocab_size)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"token count must be a positive integer, got {n!r}")
    if kind == "first" or kind == "distinct":
        if n > vocab_size:
            raise ValueError(f"{n} tokens do not fit the vocabulary of {vocab_size}")
        if kind == "first":
            return list(range(n))
        gen = torch.Generator().manual_seed(seed)
        return torch.randperm(vocab_size, generator=gen)[:n].tolist()
    if kind == "random":
        gen = torch.Generator().manual_seed(seed)
        return torch.randint(0, vocab_size, (n,), generator=gen).tolist()
    if kind == "dialogue":
        ids = list(dialogue_ids(n))
        if max(ids) >= vocab_size:
            raise ValueError(
                f"dialogue token ids reach {max(ids)}; a vocabulary of {vocab_size} cannot hold them"
            )
        return ids
    raise ValueError(f"token set must be one of {list(TOKEN_SETS)}, got {kind!r}")


#: Iterations of every decision rule (seed 000's eval budget).
RULE_ITERATIONS = 200


@dataclass(frozen=True)
class Rule:
    """A convergence decision: the first iteration ``k > warmup`` whose residual (``metric``, between
    ``f(c)`` and ``c``) is below ``threshold`` (and, with ``confirm = 1``, still below at ``k + 1``:
    stable convergence), within ``max_iterations``; eval mode unless ``train_mode`` (dropout on)."""

    name: str
    metric: str
    threshold: float
    warmup: int
    max_iterations: int = RULE_ITERATIONS
    confirm: int = 0
    train_mode: bool = False

    @property
    def mode(self) -> str:
        return "train (dropout on, no weight updates)" if self.train_mode else "eval"

    @property
    def label(self) -> str:
        stable = ", stable" if self.confirm else ""
        mode = "train mode" if self.train_mode else "eval"
        return f"{mode}, {self.metric} < {self.threshold:g}{stable}, warmup {self.warmup}, max {self.max_iterations} it"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "threshold": self.threshold,
            "warmup": self.warmup,
            "max_iterations": self.max_iterations,
            "confirm": self.confirm,
            "mode": self.mode,
        }

    def solver_config(self, method: str = "picard") -> SolverConfig:
        return SolverConfig(
            max_iterations=self.max_iterations,
            warmup=self.warmup,
            threshold=self.threshold,
            metric=self.metric,
            method=method,
            confirm=self.confirm,
            train_mode=self.train_mode,
        )


def rules(context_dim: int) -> dict[str, Rule]:
    """The named decision rules. ``l2_equiv`` is ``mse < 0.01`` rewritten in l2 units (``sqrt(D * 0.01)``)."""
    eq = convert_threshold(0.01, "mse", "l2", context_dim)
    rs = [
        Rule("seed000", "l2", 0.01, 100),  # the notes' untrained setting (000, 003)
        Rule("mse_w100", "mse", 0.01, 100),  # the same, judged in MSE
        Rule("mse", "mse", 0.01, 0),  # the seeds' fixed metric, no warmup (002)
        Rule("l2", "l2", 0.01, 0),  # the pre-fix metric, no warmup (002 "before the fix")
        Rule("l2_equiv", "l2", eq, 0),  # mse < 0.01 expressed in l2
        Rule("mse_w10", "mse", 0.01, 10),  # spec 004's warmup
        Rule("rel1e-4", "rel", 1e-4, 0),  # a strict, scale-free rule (the benchmarks)
        # stable convergence: still below the threshold one iteration later (SolverConfig.confirm = 1)
        Rule("seed000_stable", "l2", 0.01, 100, confirm=1),
        Rule("mse_stable", "mse", 0.01, 0, confirm=1),
        Rule("mse_w10_stable", "mse", 0.01, 10, confirm=1),
        # the Phase 1 recipes' own per-token rule in train mode: untrained controls of "during training"
        Rule("train001", "mse", 0.01, 0, max_iterations=50, train_mode=True),
        Rule("train004", "mse", 0.01, 10, max_iterations=200, train_mode=True),
    ]
    return {r.name: r for r in rs}


#: The rules the seed notes use (reproduce judges its claims under these), and their stable versions.
NOTES_RULES = ("seed000", "mse_w100", "mse", "l2", "l2_equiv", "mse_w10")
STABLE_RULES = ("seed000_stable", "mse_stable", "mse_w10_stable")
#: Train-mode rule of each Phase 1 recipe (the untrained control of its "during training" numbers).
CONTROL_RULES = {"001": "train001", "004": "train004"}


def seeds(n: int, start: int = 0) -> tuple[int, ...]:
    """``n`` consecutive model seeds from ``start``: the seed axis (a seed fixes the initial weights and
    Phase 1's dropout and shuffling)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of seeds must be a positive integer, got {n!r}")
    return tuple(range(start, start + n))
