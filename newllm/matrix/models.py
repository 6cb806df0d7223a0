"""The models of the matrix: a :class:`ModelSpec` (architecture config x recipe x training tokens x
seed) and :func:`build`, which returns it untrained or trained, trained at most once per code version
through the shared cache (:mod:`newllm.matrix.cache`)."""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..config import ModelConfig
from ..model import CVFPModel, build_model
from ..phase1 import Phase1Config, train_phase1
from . import cache as _cache
from .axes import RECIPES
from .compact import compact_model, remap
from .gradnorm import GradNorms

#: ``build(spec)`` without ``cache=``: the shared cache root (:func:`newllm.matrix.cache.default_root`).
DEFAULT = "default"


@dataclass(frozen=True)
class ModelSpec:
    """One model of the matrix.

    ``seed`` is the weight-init seed and Phase 1's seed (dropout, shuffling). ``samples`` are the
    token-id lists Phase 1 trains on, all in one batch of the ``loop`` (ignored when untrained).
    ``epochs`` overrides the recipe's epochs (it is part of :meth:`phase1`, hence of the cache key).
    ``compact``: train (and return) a copy whose embedding holds only the rows of the sample ids
    (:mod:`newllm.matrix.compact`). Phase 1 runs on ``device`` with ``threads`` torch threads.
    """

    config: ModelConfig
    seed: int = 0
    recipe: str = "untrained"
    samples: tuple[tuple[int, ...], ...] = ()
    loop: str = "batched"
    compact: bool = False
    device: str = "cpu"
    threads: int = 1
    #: Train this many epochs instead of the recipe's (None: the recipe's own; e.g. a quick benchmark).
    epochs: int | None = None

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {self.recipe!r}")
        if RECIPES[self.recipe].variant != "plain":
            raise ValueError(
                f"recipe {self.recipe!r} is the {RECIPES[self.recipe].variant} variant, not a CVFPModel: "
                "newllm.recipes trains it"
            )
        object.__setattr__(self, "samples", tuple(tuple(int(t) for t in s) for s in self.samples))
        if self.trained and not self.samples:
            raise ValueError(f"recipe {self.recipe!r} trains: give the samples to train on")

    @property
    def trained(self) -> bool:
        return RECIPES[self.recipe].trained

    def phase1(self) -> Phase1Config:
        over = {} if self.epochs is None else {"epochs": self.epochs}
        return RECIPES[self.recipe].phase1(
            loop=self.loop, seed=self.seed, batch_samples=len(self.samples), **over
        )

    def describe(self) -> dict[str, Any]:
        """Everything the trained weights depend on (besides the code), JSON-ready: the cache key's input."""
        return {
            "model": self.config.to_dict(),
            "seed": self.seed,
            "recipe": self.recipe,
            "phase1": self.phase1().to_dict() if self.trained else None,
            "samples": [list(s) for s in self.samples],
            "compact": self.compact,
            "device": torch.device(self.device).type,
            "threads": self.threads,
        }


@dataclass
class Built:
    """A model of the matrix in eval mode on ``spec.device``. ``history``: Phase 1's ``epochs`` (dicts
    of :class:`~newllm.phase1.EpochStats`), per-epoch per-token ``iterations``, ``grad`` (the gradient
    norms before clipping, :class:`~newllm.matrix.gradnorm.GradNorms`), training ``seconds`` and
    ``cached`` (loaded, not trained here); empty when untrained. ``id_map``: original id -> row of a
    compact model (None otherwise)."""

    model: CVFPModel
    history: dict[str, Any]
    id_map: dict[int, int] | None = None

    def ids(self, token_ids: list[int]) -> list[int]:
        """``token_ids`` as the model's rows (remapped for a compact model)."""
        return token_ids if self.id_map is None else remap(token_ids, self.id_map)


def initial_model(config: ModelConfig, seed: int) -> CVFPModel:
    """``build_model(config, seed=seed)`` in eval mode, one shared instance per (config, seed) for the
    last two asked (building the 12.9M-entry embedding costs more than a short solve). Do not modify it."""
    base = _initial(replace(config, context_clamp=None), seed)
    if config.context_clamp is None:
        return base
    model = CVFPModel(config)  # the clamp does not change the weights
    model.load_state_dict(base.state_dict())
    return model.eval()


@functools.lru_cache(maxsize=2)
def _initial(config: ModelConfig, seed: int) -> CVFPModel:
    return build_model(config, seed=seed).eval()


def start(spec: ModelSpec) -> tuple[CVFPModel, dict[int, int] | None]:
    """A fresh (modifiable) copy of the spec's initial weights on ``spec.device``, compacted if asked."""
    if spec.compact:
        ids = sorted({t for s in spec.samples for t in s})
        model, id_map = compact_model(initial_model(spec.config, spec.seed), ids)
        return model.to(spec.device), id_map
    return build_model(spec.config, seed=spec.seed).to(spec.device), None


def train(spec: ModelSpec) -> Built:
    """Run Phase 1 for ``spec`` (no cache)."""
    model, id_map = start(spec)
    samples = [list(s) if id_map is None else remap(list(s), id_map) for s in spec.samples]
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    t0 = time.perf_counter()
    cfg = spec.phase1()
    try:
        with GradNorms(model) as norms:
            run = train_phase1(model, samples, cfg, progress=False)
    finally:
        torch.set_num_threads(threads)
    history = {
        "epochs": [asdict(e) for e in run.epochs],
        "iterations": [[r.iterations for r in run.records if r.epoch == e.epoch] for e in run.epochs],
        "grad": norms.summary(cfg.grad_clip),
        "seconds": time.perf_counter() - t0,
        "cached": False,
    }
    return Built(model.eval(), history, id_map)


def build(spec: ModelSpec, cache: str | Path | None = DEFAULT) -> Built:
    """The model of ``spec``: untrained, or trained through the cache under ``cache`` (the shared root
    by default; ``None``: train here, store nothing)."""
    if not spec.trained:
        if spec.compact:
            model, id_map = start(spec)
            return Built(model.eval(), {}, id_map)
        return Built(build_model(spec.config, seed=spec.seed).to(spec.device).eval(), {})
    if cache is None:
        return train(spec)
    root = _cache.default_root() if cache == DEFAULT else Path(cache)
    return _cache.fetch(root, spec)
