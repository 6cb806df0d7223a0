"""The recipe benchmark: every recipe x architecture trained on real dialogue, measured on held-out
conversations (:mod:`.measure`), Phase 2 beside the count baselines, judged against issue 18's goals.

A :class:`Workload` fixes the data (the offline UltraChat-schema corpus, first ``conversations`` of
``train_sft``, truncated to ``max_length`` tokens, split by conversation with ``val_fraction`` and
split seed 0), the model dims and the seeds. Phase 1 trains on the training conversations only;
Phase 2 trains its head on the training conversations' contexts and is scored on the held-out ones.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..matrix import BENCHMARK_RECIPES, NOTES_ARCHITECTURES, RECIPES, ModelSpec, build, model_config
from ..model import build_model
from ..phase1.cache import Phase1Cache
from ..phase2 import Phase2Config, sample_keys, split_samples, train_phase2
from .inject import InjectedModel, train_injected
from .judge import best, judge
from .measure import (
    FIXED,
    RULE,
    Plain,
    Solved,
    carry_vs_reset,
    contraction_at,
    distinct,
    information,
    solve_rows,
    solve_sequences,
)


@dataclass(frozen=True)
class Workload:
    """What one benchmark run trains and measures (see the module doc)."""

    name: str
    conversations: int
    max_length: int
    val_fraction: float
    dim: int
    seeds: tuple[int, ...]
    recipes: tuple[str, ...]
    archs: tuple[str, ...] = NOTES_ARCHITECTURES
    #: Rows whose full Jacobian is computed (exact σ_max and ρ).
    exact_sample: int = 32
    phase2_epochs: int = 10
    phase2_lr: float = 5e-3
    #: Override of every recipe's Phase 1 epochs (None: the recipe's own).
    epochs: int | None = None


ALL = ("untrained", *BENCHMARK_RECIPES)
#: The quick run's recipes: the control, the notes' recipe, the best-guess combination, the variant.
QUICK_RECIPES = ("untrained", "seeds", "sigma-hinge+vc", "inject+sigma-hinge+vc")
QUICK = Workload("quick", 8, 64, 0.34, 16, (0,), QUICK_RECIPES, epochs=5, phase2_epochs=10, exact_sample=8)
FULL = Workload("full", 16, 64, 0.25, 32, (0,), ALL, phase2_epochs=15, exact_sample=16)
#: Extra seeds the best recipe is re-measured on (the spread over seeds of the winner).
CONFIRM_SEEDS = (1,)


def note(msg: str) -> None:
    """A progress line on stderr."""
    print(f"[recipes {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Data:
    samples: list[list[int]]
    conversation_ids: list[str]
    train: list[int]
    heldout: list[int]

    def part(self, which: list[int]) -> list[list[int]]:
        return [self.samples[s] for s in which]

    def describe(self) -> dict[str, Any]:
        return {
            "source": "ultrachat (offline chitchat corpus, UltraChat schema), split train_sft",
            "conversations": len(self.samples),
            "train_conversations": len(self.train),
            "heldout_conversations": len(self.heldout),
            "train_tokens": sum(len(s) for s in self.part(self.train)),
            "heldout_tokens": sum(len(s) for s in self.part(self.heldout)),
            "heldout_distinct_tokens": int(distinct(self.part(self.heldout)).numel()),
            "heldout_ids": [self.conversation_ids[s] for s in self.heldout],
        }


def load_data(w: Workload) -> Data:
    """The workload's conversations and their split (the same split Phase 2 uses: split seed 0)."""
    from ..data import load_samples

    loaded = load_samples("ultrachat", "train_sft", w.conversations, w.max_length)
    ids = list(loaded.ids)
    train, held = split_samples(sample_keys(len(ids), ids), w.val_fraction, 0)
    return Data([list(s) for s in loaded.input_ids], ids, train, held)


def train_subject(recipe: str, arch: str, w: Workload, seed: int, data: Data):
    """``(subject, phase1 summary)`` of ``recipe`` on ``arch`` at ``w.dim``, trained on the training side."""
    config = model_config(arch, embed_dim=w.dim, context_dim=w.dim, hidden_dim=w.dim)
    train = data.part(data.train)
    r = RECIPES[recipe]
    t0 = time.perf_counter()
    if r.variant == "inject":
        over = {} if w.epochs is None else {"epochs": w.epochs}
        cfg = r.phase1(loop="batched", seed=seed, batch_samples=len(train), **over)
        model = InjectedModel(build_model(config, seed=seed))
        hist = train_injected(model, train, cfg)
        return model.eval(), {"epochs": hist, "seconds": time.perf_counter() - t0}
    spec = ModelSpec(
        config, seed=seed, recipe=recipe, samples=tuple(map(tuple, train)), loop="batched", epochs=w.epochs
    )
    built = build(spec, cache=None)
    last = built.history.get("epochs", [{}])[-1] if built.history else {}
    summary = {k: last.get(k) for k in ("rate", "mean_iterations", "effective_rank", "max_cosine")}
    return Plain(built.model).eval(), {"final_epoch": summary, "seconds": time.perf_counter() - t0}


def phase2_ppl(base, data: Data, solved: Solved, mode: str, w: Workload, seed: int) -> dict[str, Any]:
    """Phase 2 (head on the training conversations' contexts, scored on the held-out ones)."""
    lengths = torch.tensor([len(s) for s in data.samples])
    cache = Phase1Cache(
        contexts=solved.contexts,
        token_ids=torch.tensor([t for s in data.samples for t in s]),
        offsets=torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]),
        converged=solved.converged,
        iterations=solved.iterations,
        checkpoint="recipes-benchmark",
        context_mode=mode,
        solver=FIXED.to_dict(),
    )
    cfg = Phase2Config(
        epochs=w.phase2_epochs,
        learning_rate=w.phase2_lr,
        val_fraction=w.val_fraction,
        split_seed=0,
        seed=seed,
    )
    run = train_phase2(base, cache, cfg, conversation_ids=data.conversation_ids, progress=False)
    return {
        "ppl": run.final.val["ppl"],
        "unigram_ppl": run.baselines["unigram"].ppl,
        "bigram_ppl": run.baselines["bigram"].ppl,
        "positions": run.final.val["positions"],
    }


def measure_subject(subject, data: Data, w: Workload, seed: int) -> dict[str, Any]:
    """Every measurement of one trained subject (held-out conversations; see docs/recipes.md)."""
    held = data.part(data.heldout)
    conv = {m: solve_sequences(subject, held, RULE, carry=m == "carry") for m in ("reset", "carry")}
    ids = distinct(held)
    with torch.no_grad():
        zeros = torch.zeros(ids.numel(), subject.config.context_dim)
        fixed = solve_rows(subject, subject.inputs(ids, zeros), zeros, FIXED)
    contr = contraction_at(subject, ids, fixed.context, exact_sample=w.exact_sample, seed=seed)
    info = information(fixed.context, ids, seed=seed)
    solved = {
        m: solve_sequences(subject, data.samples, FIXED, carry=m == "carry") for m in ("reset", "carry")
    }
    mask = _heldout_mask(data)
    on_held = {m: Solved(*(t[mask] for t in _tensors(s))) for m, s in solved.items()}
    k = contr["sigma_max_exact_max"]
    return {
        "converged_reset": float(conv["reset"].converged.double().mean()),
        "converged_carry": float(conv["carry"].converged.double().mean()),
        "mean_iterations_reset": float(conv["reset"].iterations.double().mean()),
        "fixed_point_converged": float(fixed.converged.double().mean()),
        **contr,
        **info,
        "carry_vs_reset": carry_vs_reset(on_held["reset"], on_held["carry"], k),
        "phase2": {m: phase2_ppl(subject.base, data, s, m, w, seed) for m, s in solved.items()},
    }


def _tensors(s: Solved) -> tuple[torch.Tensor, ...]:
    return (s.contexts, s.converged, s.iterations, s.residual)


def _heldout_mask(data: Data) -> torch.Tensor:
    """Bool ``[N]`` over the flattened tokens of every conversation: True on held-out ones."""
    held = set(data.heldout)
    return torch.tensor([s in held for s, sample in enumerate(data.samples) for _ in sample])


def run_record(recipe: str, arch: str, w: Workload, data: Data) -> dict[str, Any]:
    """One recipe x architecture over the workload's seeds: per-seed measurements and the goals."""
    per_seed, phase1 = [], []
    for seed in w.seeds:
        t0 = time.perf_counter()
        subject, summary = train_subject(recipe, arch, w, seed, data)
        per_seed.append(measure_subject(subject, data, w, seed))
        phase1.append(summary)
        note(f"{recipe} / {arch} / seed {seed}: {time.perf_counter() - t0:.1f} s")
    return {
        "recipe": recipe,
        "arch": arch,
        "variant": RECIPES[recipe].variant,
        "dim": w.dim,
        "seeds": list(w.seeds),
        "phase1": phase1,
        "per_seed": per_seed,
        "goals": judge(per_seed, w.dim),
    }


def run_benchmark(
    w: Workload,
    *,
    confirm_seeds: tuple[int, ...] = (),
    full_dim: int | None = None,
    on_record: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Every record of ``w``; then the best recipe on ``confirm_seeds`` too (``confirm``, every
    architecture) and, with ``full_dim``, at that dim (seed 0, ``full_size``). ``on_record`` gets the
    records so far after each one (e.g. to save partial results)."""
    t0 = time.perf_counter()
    torch.set_num_threads(1)  # a shared 2-core machine: one thread measured faster than oversubscription
    data = load_data(w)
    note(f"workload {w.name}: {data.describe()['train_tokens']} training / "
         f"{data.describe()['heldout_tokens']} held-out tokens, {len(w.recipes)} recipes x {len(w.archs)} archs")  # fmt: skip
    records: list[dict[str, Any]] = []
    for r in w.recipes:
        for a in w.archs:
            records.append(run_record(r, a, w, data))
            if on_record is not None:
                on_record(records)
    top = best(records)
    out: dict[str, Any] = {
        "schema": "newllm-recipes/1",
        "workload": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(w).items()},
        "data": data.describe(),
        "records": records,
        "best": {"recipe": top["recipe"], "arch": top["arch"], "met_count": top["goals"]["met_count"]},
    }
    if confirm_seeds:
        again = _with(w, f"{w.name}+seeds", w.dim, tuple(confirm_seeds), top["recipe"])
        out["confirm"] = [run_record(top["recipe"], a, again, data) for a in w.archs]
    if full_dim is not None:
        big = _with(w, f"{w.name}@{full_dim}", full_dim, (0,), top["recipe"])
        out["full_size"] = [run_record(top["recipe"], a, big, data) for a in w.archs]
    out["seconds"] = time.perf_counter() - t0
    return out


def _with(w: Workload, name: str, dim: int, seeds: tuple[int, ...], recipe: str) -> Workload:
    return Workload(name, w.conversations, w.max_length, w.val_fraction, dim, seeds, (recipe,), w.archs,
                    w.exact_sample, w.phase2_epochs, w.phase2_lr, w.epochs)  # fmt: skip
