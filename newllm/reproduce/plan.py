"""What a reproduction runs: the plan (quick or full) and its tasks, cells of the experiment matrix.

A *task* is one model (architecture, seed, token set, training recipe) and everything measured on it;
its ``conditions`` dict is hashed so that a resumed run reuses a finished task only when nothing that
could change its numbers differs. Untrained experiments run over :attr:`Plan.seeds` (20 in the full
plan), trained ones over :attr:`Plan.trained_seeds` (5).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..config import ModelConfig
from ..matrix import (
    CONTROL_RULES,
    NOTES_ARCHITECTURES,
    NOTES_RULES,
    RECIPES,
    RULE_ITERATIONS,
    STABLE_RULES,
    ModelSpec,
    model_config,
)
from ..matrix import (
    seeds as seed_axis,
)
from ..matrix import token_ids as matrix_token_ids
from ..phase1 import Phase1Config

#: Bump when an experiment's code changes what it measures (invalidates resumed tasks).
REPRO_VERSION = 3

#: Iterations of every probe: the decision rules' budget (the notes' eval budget, seed 000).
PROBE_ITERATIONS = RULE_ITERATIONS

#: Decision rules (newllm.matrix.rules) evaluated on every probe (200 iterations, traces kept).
PROBE_JUDGES = NOTES_RULES + STABLE_RULES
#: Rules of a direct (no probe) solve of a trained model.
DIRECT_JUDGES = ("mse", "mse_stable", "l2")
#: Tokens at the head of a long untrained sequence that are also solved alone (accumulation check).
HEAD_TOKENS = 16
#: A Phase 1 condition at the large count: (token set, loop, recipe, architectures).
Large = tuple[str, str, str, tuple[str, ...]]


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
        if k.get("ids") not in (None, "spread"):
            parts.append(k["ids"])
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

    @property
    def group(self) -> tuple[str, int]:
        """Tasks of one (architecture, seed) share the initial weights: one worker runs them together."""
        return (self.key["arch"], self.key["seed"])


@dataclass(frozen=True)
class Plan:
    """Which tasks a reproduction runs. :func:`full_plan` and :func:`quick_plan` are the two presets.

    Every task is a cell of the experiment matrix (:mod:`newllm.matrix`): an architecture of
    :data:`~newllm.matrix.NOTES_ARCHITECTURES`, a recipe, a token set, a seed.
    """

    #: Seeds of the untrained experiments (probes are cheap).
    seeds: tuple[int, ...] = seed_axis(20)
    #: Seeds of the trained experiments; None: ``seeds``.
    trained_seeds: tuple[int, ...] | None = seed_axis(5)
    quick: bool = False
    #: 000/003: untrained, ids 100, 200, ... (eval, full probes).
    untrained_counts: tuple[int, ...] = (1, 10, 512)
    #: 000 "clipping is unnecessary": spread counts also run with clamp(-10, 10).
    clamp_counts: tuple[int, ...] = (1, 10)
    #: Untrained on dialogue (with and without the clamp); None skips (needs the data extra).
    dialogue_count: int | None = 512
    #: Untrained on ids 0..N-1 (the controls of 002's table; light probes).
    control_counts: tuple[int, ...] = tuple(range(10, 101, 10))
    #: 001: Phase 1 with the seeds' spec loop, ids 100 (1 token) and 100..1000 (10 tokens).
    spec_counts: tuple[int, ...] = (1, 10)
    #: 002: token scaling (ids 0..N-1 as 002 states), batched loop.
    scaling_counts: tuple[int, ...] = tuple(range(10, 101, 10))
    #: 002 counts also trained with the spec loop (the notes' loop).
    scaling_spec_counts: tuple[int, ...] = tuple(range(10, 101, 10))
    #: 002 counts that get a full probe (traces, all judges) instead of direct solves.
    scaling_probe_counts: tuple[int, ...] = (10, 20)
    #: The token count of the 512-token experiments; None skips them.
    large_count: int | None = 512
    #: Phase 1 at ``large_count``: (token set, loop, recipe, architectures).
    large: tuple[Large, ...] = (
        ("spread", "batched", "001", NOTES_ARCHITECTURES),
        ("spread", "batched", "004", NOTES_ARCHITECTURES),
        ("dialogue", "spec", "001", NOTES_ARCHITECTURES),
        ("dialogue", "spec", "004", ("layerwise",)),  # 004's own loop: 28k optimizer steps per model
    )
    #: 004's clipping claim: trained without gradient clipping at ``noclip_count`` tokens; None skips.
    noclip_count: int | None = 100
    noclip: tuple[Large, ...] = (("first", "spec", "001", NOTES_ARCHITECTURES),)
    #: Jacobian spectra at the fixed point for at most this many tokens per task.
    contraction_tokens: int = 5
    #: ModelConfig overrides (tests shrink the dims); empty = the seeds' model.
    model: dict[str, Any] = field(default_factory=dict)
    #: torch intra-op threads while running (results are bitwise deterministic for a fixed count).
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("seeds", "trained_seeds"):
            ss = getattr(self, name)
            if name == "trained_seeds" and ss is None:
                continue
            if not ss or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in ss):
                raise ValueError(f"{name} must be a non-empty list of integers >= 0, got {list(ss)!r}")
            if len(set(ss)) != len(ss):
                raise ValueError(f"{name} must be distinct, got {list(ss)!r}")
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
        """``rel`` thresholds for the rate-vs-threshold curves: 1e-6 .. 1, 4 per decade."""
        return [10.0 ** (-6 + i / 4) for i in range(25)]

    def tasks(self) -> list[Task]:
        """Every task: the untrained ones first, then the trained ones (cheapest first)."""
        out: list[Task] = []
        big = () if self.dialogue_count is None else (self.dialogue_count,)
        for seed in self.seeds:
            for arch in NOTES_ARCHITECTURES:
                for n in self.untrained_counts:
                    out.append(self._untrained(arch, seed, n, None, "spread"))
                for n in self.clamp_counts:
                    out.append(self._untrained(arch, seed, n, 10.0, "spread"))
                for n in big:
                    out.append(self._untrained(arch, seed, n, None, "dialogue"))
                    out.append(self._untrained(arch, seed, n, 10.0, "dialogue"))
                for n in self.control_counts:
                    out.append(self._untrained(arch, seed, n, None, "first"))
        for seed in self.seeds_trained:
            for arch in NOTES_ARCHITECTURES:
                for n in self.spec_counts:
                    out.append(self._trained("phase1_spec", arch, seed, n, "spread", "spec", "001", True))
                for n in self.scaling_counts:
                    probe = n in self.scaling_probe_counts
                    out.append(
                        self._trained("phase1_scaling", arch, seed, n, "first", "batched", "001", probe)
                    )
                    if n in self.scaling_spec_counts:
                        out.append(
                            self._trained("phase1_scaling", arch, seed, n, "first", "spec", "001", probe)
                        )
                for exp, count, conds in (
                    ("phase1_large", self.large_count, self.large),
                    ("phase1_noclip", self.noclip_count, self.noclip),
                ):
                    for ids, loop, recipe, archs in conds if count is not None else ():
                        if arch in archs and count is not None:
                            out.append(self._trained(exp, arch, seed, count, ids, loop, recipe, False))
        return out

    def token_ids(self, rule: str, n: int) -> list[int]:
        """Token set ``rule`` of the matrix: ``spread`` 100, 200, ... (000/001), ``first`` 0 .. n-1 (002),
        ``dialogue`` the first n tokens of a real conversation."""
        return matrix_token_ids(rule, n, self.model_config("layerwise").vocab_size)

    def model_spec(self, task: Task) -> ModelSpec:
        """The matrix model of a trained task: compact, trained on the task's ids with its recipe."""
        k, cond = task.key, task.conditions
        return ModelSpec(
            self.model_config(k["arch"]),
            seed=k["seed"],
            recipe=cond["matrix_recipe"],
            samples=(tuple(cond["ids"]),),
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

    def _untrained(self, arch: str, seed: int, n: int, clamp: float | None, rule: str) -> Task:
        cfg = self.model_config(arch, clamp)
        cond = self._base("untrained", arch, seed, n, cfg)
        light = rule == "first"  # the controls of the trained 002 table: rules only
        cond.update(
            token_rule=rule,
            ids=self.token_ids(rule, n),
            probe=not light,
            light=light,
            controls=[CONTROL_RULES["001"]] + ([CONTROL_RULES["004"]] if rule == "dialogue" else []),
            head=HEAD_TOKENS if (n > HEAD_TOKENS and clamp is None and not light) else 0,
        )
        key = {"arch": arch, "seed": seed, "tokens": n, "clamp": clamp, "ids": rule}
        return Task("untrained", key, cond)

    def _trained(
        self, experiment: str, arch: str, seed: int, n: int, rule: str, loop: str, recipe: str, probe: bool
    ) -> Task:
        cfg = self.model_config(arch)
        cond = self._base(experiment, arch, seed, n, cfg)
        matrix_recipe = recipe + ("-noclip" if experiment == "phase1_noclip" else "")
        cond.update(
            token_rule=rule,
            ids=self.token_ids(rule, n),
            probe=probe,
            loop=loop,
            recipe=recipe,
            matrix_recipe=matrix_recipe,
            phase1=phase1_config(matrix_recipe, loop, seed).to_dict(),
        )
        key = {"arch": arch, "seed": seed, "tokens": n, "loop": loop, "recipe": recipe}
        if experiment in ("phase1_large", "phase1_noclip"):
            key["ids"] = rule
        return Task(experiment, key, cond)


def _seeds(seeds, trained_seeds, default: tuple[tuple[int, ...], tuple[int, ...]], trained_n: int) -> dict:
    """Untrained and trained seeds: the defaults, or ``seeds`` (then the trained ones are its first
    ``trained_n``) and ``trained_seeds`` as given."""
    untrained, trained = default
    if seeds is not None:
        untrained, trained = tuple(seeds), tuple(seeds)[:trained_n]
    if trained_seeds is not None:
        trained = tuple(trained_seeds)
    return {"seeds": untrained, "trained_seeds": trained}


def full_plan(seeds=None, trained_seeds=None, **kw: Any) -> Plan:
    """Every table: untrained over 20 seeds (1/10/512 tokens, clamp, dialogue, the 002 controls);
    trained over 5 (001 spec loop, 002 at 10..100 in both loops, 512 tokens)."""
    return Plan(**_seeds(seeds, trained_seeds, (seed_axis(20), seed_axis(5)), 5), **kw)


def quick_plan(seeds=None, trained_seeds=None, **kw: Any) -> Plan:
    """Three untrained seeds, two trained, fewer token counts, no 512-token runs (a minute)."""
    return Plan(
        **_seeds(seeds, trained_seeds, ((0, 1, 2), (0, 1)), 2),
        quick=True,
        untrained_counts=(1, 10),
        clamp_counts=(1, 10),
        dialogue_count=None,
        control_counts=(10, 20),
        spec_counts=(1, 10),
        scaling_counts=(10, 20),
        scaling_spec_counts=(10, 20),
        scaling_probe_counts=(10,),
        large_count=None,
        noclip_count=None,
        **kw,
    )
