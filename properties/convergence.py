"""Family 4's configurations, measurement and comparison (shared by the test and the regenerate command).

Configurations: the seeds' full-size models (dims 256, vocab 50,259, 2 layers), Sequential and
Layer-wise, untrained (``build_model(seed=0)``) and trained, solved for the seeds' token ids
(``spread_token_ids``: 100, 200, ... for up to 100 tokens; stride 98 for 512) at each count in
``COUNTS``, under ``mse`` and ``l2`` with threshold 0.01 in eval mode from zero contexts.

* untrained: warmup 100, max_iterations 200 (seed 000's settings);
* trained: warmup 0, max_iterations 200 (seeds 001/002: "no warmup needed with training"). Trained
  once per code version with the batched Phase 1 loop at the seeds' settings (3 epochs, Adam lr 1e-4,
  <= 50 inner iterations, tolerance 0.01 mse, clip 1.0, dropout 0.1, jacobian_weight 0, seed 0) on
  two samples, the 100-token and the 512-token id lists, as one batch; on CPU, then moved to the device.

A configuration regresses when its convergence rate is lower than the baseline's by more than a
one-sided binomial test at ``ALPHA`` allows (H0: the true rate is the baseline's; scipy's
``binomtest(k, n, p_base, alternative="less")``), or its mean iterations exceed the baseline's by
more than ``ITERATION_MARGIN`` (relative) plus ``ITERATION_SLACK`` (absolute).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch
from scipy.stats import binomtest

from newllm import ModelConfig, SolverConfig, build_model, solve, spread_token_ids
from newllm.phase1 import Phase1Config, train_phase1
from properties.trained import cached_model

COUNTS = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 512)
ARCHS = ("sequential", "layerwise")
STATES = ("untrained", "trained")
METRICS = ("mse", "l2")
THRESHOLD = 0.01
SOLVER = {
    "untrained": {"warmup": 100, "max_iterations": 200},
    "trained": {"warmup": 0, "max_iterations": 200},
}
MODEL_SEED = 0
PHASE1 = Phase1Config(loop="batched", batch_samples=2, seed=0)
ALPHA = 0.01
ITERATION_MARGIN = 0.10
ITERATION_SLACK = 1.0
BASELINES = Path(__file__).parent / "baselines"


def baseline_path(device: str) -> Path:
    return BASELINES / f"convergence_{torch.device(device).type}.json"


def settings() -> dict:
    """Everything a baseline depends on; a baseline made under other settings is stale."""
    return {
        "counts": list(COUNTS),
        "threshold": THRESHOLD,
        "solver": SOLVER,
        "model": ModelConfig().to_dict(),
        "model_seed": MODEL_SEED,
        "phase1": PHASE1.to_dict(),
        "train_samples": ["spread_token_ids(100)", "spread_token_ids(512)"],
    }


def train_samples(vocab_size: int) -> list[list[int]]:
    return [spread_token_ids(100, vocab_size), spread_token_ids(512, vocab_size)]


def model_for(arch: str, state: str, cache_root: str | Path, device: str = "cpu"):
    cfg = ModelConfig(arch=arch)
    if state == "untrained":
        return build_model(cfg, seed=MODEL_SEED).to(device).eval()

    def train():
        m = build_model(cfg, seed=MODEL_SEED)
        train_phase1(m, train_samples(cfg.vocab_size), PHASE1, progress=False)
        return m

    recipe = {"family": 4, "arch": arch, **settings()}
    return cached_model(cache_root, recipe, train).to(device).eval()


def measure(model, state: str, metric: str) -> list[dict]:
    """One entry per token count: tokens, converged, rate, mean_iterations."""
    out = []
    cfg = SolverConfig(metric=metric, threshold=THRESHOLD, **SOLVER[state])
    for n in COUNTS:
        r = solve(model, spread_token_ids(n, model.config.vocab_size), cfg)
        out.append(
            {
                "tokens": n,
                "converged": int(r.converged.sum()),
                "rate": r.rate,
                "mean_iterations": r.mean_iterations,
            }
        )
    return out


def key(arch: str, state: str, metric: str) -> str:
    return f"{arch}/{state}/{metric}"


def regressions(label: str, base: list[dict], now: list[dict]) -> list[str]:
    """Failure lines naming the configuration and the numbers; [] when nothing regressed."""
    lines = []
    by_n = {e["tokens"]: e for e in base}
    for e in now:
        n = e["tokens"]
        b = by_n.get(n)
        if b is None:
            lines.append(f"{label}, {n} tokens: not in the baseline")
            continue
        p = binomtest(e["converged"], n, b["rate"], alternative="less").pvalue if b["rate"] > 0 else 1.0
        if p < ALPHA:
            lines.append(
                f"{label}, {n} tokens: convergence rate {b['rate']:.3f} -> {e['rate']:.3f} "
                f"({e['converged']}/{n}; one-sided binomial p = {p:.3g} < alpha {ALPHA})"
            )
        limit = b["mean_iterations"] * (1 + ITERATION_MARGIN) + ITERATION_SLACK
        if e["mean_iterations"] > limit:
            lines.append(
                f"{label}, {n} tokens: mean iterations {b['mean_iterations']:.2f} -> "
                f"{e['mean_iterations']:.2f} (allowed <= {limit:.2f})"
            )
    return lines


def new_baseline(device: str) -> dict:
    return {
        "about": "newllm convergence baseline (properties/test_convergence_regression.py); regenerate "
        "with `python -m properties.regenerate_baseline --device " + torch.device(device).type + "`",
        "device": torch.device(device).type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "settings": settings(),
        "configurations": {},
    }


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
