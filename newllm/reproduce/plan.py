"""What a reproduction runs: the plan (quick or full) and its tasks, cells of the experiment matrix.

A *task* is one model (architecture, seed, token set, training recipe) and everything measured on it;
its ``conditions`` dict is hashed so that a resumed run reuses a finished task only when nothing that
could change its numbers differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..config import ModelConfig
from ..matrix import NOTES_ARCHITECTURES, RECIPES, RULE_ITERATIONS, ModelSpec, model_config
from ..matrix import token_ids as matrix_token_ids
from ..phase1 import Phase1Config

#: Bump when an experiment's code changes what it measures (invalidates resumed tasks).
REPRO_VERSION = 2

#: Iterations of every probe: the decision rules' budget (the notes' eval budget, seed 000).
PROBE_ITERATIONS = RULE_ITERATIONS

#: Decision rules (newllm.matrix.rules) evaluated on every full probe (200 iterations, traces kept).
PROBE_JUDGES = ("seed000", "mse_w100", "mse", "l2", "l2_equiv")


def phase1_config(recipe: str, loop: str, seed: int) -> Phase1Config:
    return RECIPES[recipe].phase1(loop=loop, seed=seed)


@dataclass(frozen=True)
class Task:
    """One model and its measurements. ``key`` holds the conditions claims select on."""

    experiment: str
    key: dict[str, Any]
    conditions: dict[str, Any]

    @property
    def name(self) -> str:
        k = self.key
        parts = [k["arch"], f"n{k['tokens']}", f"s{k['seed']}"]
        if k.get("clamp") is not None:
            parts.append(f"clamp{k['clamp']:g}")
        if "loop" in k:
            parts.append(k["loop"])
        if "recipe" in k:
            parts.append(f"r{k['recipe']}")
        return f"{self.experiment}/{'-'.join(parts)}"

    @property
    def digest(self) -> str:
        blob = json.dumps(self.conditions, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """Which tasks a reproduction runs. :func:`full_plan` and :func:`quick_plan` are the two presets.

    Every task is a cell of the experiment matrix (:mod:`newllm.matrix`): an architecture of
    :data:`~newllm.matrix.NOTES_ARCHITECTURES`, a recipe, a token set, a seed. ``seeds`` is the seed
    axis of the untrained experiments and, unless ``trained_seeds`` is given, of the trained ones.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    #: Seeds of the trained experiments (Phase 1 costs more than a probe); None: ``seeds``.
    trained_seeds: tuple[int, ...] | None = None
    quick: bool = False
    #: 000/003: untrained token counts (eval, full probes).
    untrained_counts: tuple[int, ...] = (1, 10, 512)
    #: 000 "clipping is unnecessary": counts also run with clamp(-10, 10).
    clamp_counts: tuple[int, ...] = (1, 10)
    #: 001: Phase 1 with the seeds' spec loop, ids 100 (1 token) and 100..1000 (10 tokens).
    spec_counts: tuple[int, ...] = (1, 10)
    #: 002: token scaling (ids 0..N-1 as 002 states), batched loop.
    scaling_counts: tuple[int, ...] = tuple(range(10, 101, 10))
    #: 002 counts also trained with the spec loop (the loop's effect on the table).
    scaling_spec_counts: tuple[int, ...] = (10, 20, 100)
    #: 002 counts that get a full probe (traces, all judges) instead of direct MSE solves.
    scaling_probe_counts: tuple[int, ...] = (10, 20)
    #: 001's "expected for 512 tokens" and 004's hypothesis: trained at this count (batched); None skips.
    large_count: int | None = 512
    large_recipes: tuple[str, ...] = ("001", "004")
    #: Jacobian spectra at the fixed point for at most this many tokens per task.
    contraction_tokens: int = 5
    #: ModelConfig overrides (tests shrink the dims); empty = the seeds' model.
    model: dict[str, Any] = field(default_factory=dict)
    #: torch intra-op threads while running (results are bitwise deterministic for a fixed count).
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("seeds", "trained_seeds"):
            seeds = getattr(self, name)
            if name == "trained_seeds" and seeds is None:
                continue
            if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
                raise ValueError(f"{name} must be a non-empty list of integers >= 0, got {list(seeds)!r}")
            if len(set(seeds)) != len(seeds):
                raise ValueError(f"{name} must be distinct, got {list(seeds)!r}")
        if not (isinstance(self.threads, int) and self.threads >= 1):
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")
        self.model_config("layerwise")  # validates the overrides

    def model_config(self, arch: str, clamp: float | None = None) -> ModelConfig:
        return model_config(arch, context_clamp=clamp, **self.model)

    @property
    def seeds_trained(self) -> tuple[int, ...]:
        return self.seeds if self.trained_seeds is None else self.trained_seeds

    @property
    def context_dim(self) -> int:
        return self.model_config("layerwise").context_dim

    @property
    def threshold_grid(self) -> list[float]:
        """``rel`` tolerances for the rate-vs-tolerance curves: 1e-6 .. 1, 4 per decade."""
        return [10.0 ** (-6 + i / 4) for i in range(25)]

    def tasks(self) -> list[Task]:
        """Every task, cheapest experiments first."""
        out: list[Task] = []
        for seed in self.seeds:
            for arch in NOTES_ARCHITECTURES:
                for n in self.untrained_counts:
                    out.append(self._untrained(arch, seed, n, None))
                for n in self.clamp_counts:
                    out.append(self._untrained(arch, seed, n, 10.0))
        for seed in self.seeds_trained:
            for arch in NOTES_ARCHITECTURES:
                for n in self.spec_counts:
                    out.append(self._trained("phase1_spec", arch, seed, n, "spread", "spec", "001", True))
        for seed in self.seeds_trained:
            for arch in NOTES_ARCHITECTURES:
                for n in self.scaling_counts:
                    probe = n in self.scaling_probe_counts
                    out.append(
                        self._trained("phase1_scaling", arch, seed, n, "first", "batched", "001", probe)
                    )
                    if n in self.scaling_spec_counts:
                        out.append(
                            self._trained("phase1_scaling", arch, seed, n, "first", "spec", "001", probe)
                        )
        if self.large_count is not None:
            for seed in self.seeds_trained:
                for arch in NOTES_ARCHITECTURES:
                    for r in self.large_recipes:
                        out.append(
                            self._trained(
                                "phase1_large", arch, seed, self.large_count, "spread", "batched", r, False
                            )
                        )
        return out

    def token_ids(self, rule: str, n: int) -> list[int]:
        """Token set ``rule`` of the matrix: ``spread`` 100, 200, ... (000/001) or ``first`` 0 .. n-1 (002)."""
        return matrix_token_ids(rule, n, self.model_config("layerwise").vocab_size)

    def model_spec(self, task: Task) -> ModelSpec:
        """The matrix model of a trained task: compact, trained on the task's ids with its recipe."""
        k, cond = task.key, task.conditions
        ids = self.token_ids(cond["token_rule"], k["tokens"])
        return ModelSpec(
            self.model_config(k["arch"]),
            seed=k["seed"],
            recipe=cond["recipe"],
            samples=(tuple(ids),),
            loop=cond["loop"],
            compact=True,
            threads=self.threads,
        )

    def _base(self, experiment: str, arch: str, seed: int, n: int, cfg: ModelConfig) -> dict[str, Any]:
        return {
            "experiment": experiment,
            "repro_version": REPRO_VERSION,
            "newllm": __version__,
            "arch": arch,
            "seed": seed,
            "tokens": n,
            "model": cfg.to_dict(),
            "threads": self.threads,
            "probe_iterations": PROBE_ITERATIONS,
            "contraction_tokens": self.contraction_tokens,
            "threshold_grid": self.threshold_grid,
        }

    def _untrained(self, arch: str, seed: int, n: int, clamp: float | None) -> Task:
        cfg = self.model_config(arch, clamp)
        cond = self._base("untrained", arch, seed, n, cfg)
        cond.update(token_rule="spread", probe=True)
        return Task("untrained", {"arch": arch, "seed": seed, "tokens": n, "clamp": clamp}, cond)

    def _trained(
        self, experiment: str, arch: str, seed: int, n: int, rule: str, loop: str, recipe: str, probe: bool
    ) -> Task:
        cfg = self.model_config(arch)
        cond = self._base(experiment, arch, seed, n, cfg)
        cond.update(
            token_rule=rule,
            probe=probe,
            loop=loop,
            recipe=recipe,
            phase1=phase1_config(recipe, loop, seed).to_dict(),
        )
        key = {"arch": arch, "seed": seed, "tokens": n, "loop": loop, "recipe": recipe}
        return Task(experiment, key, cond)


def full_plan(seeds: tuple[int, ...] = (0, 1, 2), **kw: Any) -> Plan:
    """Every table: 1/10/512 untrained, 001 with the spec loop, 002 at 10..100, trained 512."""
    return Plan(seeds=tuple(seeds), **kw)


def quick_plan(seeds: tuple[int, ...] = (0,), **kw: Any) -> Plan:
    """One seed, fewer token counts, no trained-512 runs (a minute on a busy 2-core machine)."""
    return Plan(
        seeds=tuple(seeds),
        quick=True,
        untrained_counts=(1, 10),
        clamp_counts=(1, 10),
        spec_counts=(1, 10),
        scaling_counts=(10, 20),
        scaling_spec_counts=(),
        scaling_probe_counts=(10,),
        large_count=None,
        **kw,
    )
