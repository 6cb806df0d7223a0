"""Iterations-to-converge per architecture: untrained and Phase 1-trained, two tolerances, Picard and
Anderson, 1 to 512 tokens. The counts (deterministic given the seeds) land in ``extra_info["counts"]``;
``ci/compare_iters.py`` gates on them. The time of the one solve is for information.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from bench.cases import (
    ARCHS,
    MAX_ITERATIONS,
    METHODS,
    THREADS,
    TOKEN_COUNTS,
    TOLERANCES,
    TRAINING,
    device_name,
    token_ids,
)
from newllm import SolverConfig, solve
from newllm.tools.perf import iteration_counts, synced

CASES = list(itertools.product(ARCHS, ("untrained", "trained"), TOLERANCES, METHODS, TOKEN_COUNTS))


@pytest.mark.parametrize(
    ("arch", "state", "tolerance", "method", "tokens"), CASES, ids=["-".join(map(str, c)) for c in CASES]
)
def test_iterations_to_converge(benchmark, models, device, arch, state, tolerance, method, tokens):
    model = models.get(arch, state, device)
    metric, threshold = TOLERANCES[tolerance]
    cfg = SolverConfig(max_iterations=MAX_ITERATIONS, metric=metric, threshold=threshold, method=method)
    ids = token_ids(tokens, model.config.vocab_size)

    res = benchmark.pedantic(synced(solve, device), args=(model, ids, cfg), rounds=1, iterations=1)

    counts = iteration_counts(res)
    assert counts["tokens"] == tokens
    assert 1 <= counts["median_iterations"] <= counts["p90_iterations"] <= counts["max_iterations"]
    assert counts["max_iterations"] <= MAX_ITERATIONS
    assert bool(torch.isfinite(res.context).all())
    conv = res.converged
    assert bool((res.residual[metric][conv] < threshold).all()), "a converged token is above the threshold"
    if method == "picard":
        assert torch.equal(res.evaluations, res.iterations), "Picard evaluates f once per iteration"
    extra = {
        "kind": "iterations",
        "arch": arch,
        "structure": list(model.config.blocks),
        "state": state,
        "tolerance": tolerance,
        "metric": metric,
        "threshold": threshold,
        "method": method,
        "tokens": tokens,
        "max_iterations_cap": MAX_ITERATIONS,
        "device": str(device),
        "device_name": device_name(device),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "threads": THREADS,
        # Anderson's least squares amplify float rounding at the strict tolerance: its counts move
        # between CPU kernels (see SENSITIVE_RULES in ci/compare_iters.py), so the gate is looser there.
        "rounding_sensitive": method == "anderson" and tolerance == "rel1e-4",
        "counts": counts,
    }
    if state == "trained":
        extra["training"] = {
            "config": TRAINING.to_dict(),
            "epochs": [
                {k: e[k] for k in ("epoch", "rate", "mean_iterations", "optimizer_steps")}
                for e in models.training[(arch, str(torch.device(device)))]
            ],
        }
    benchmark.extra_info.update(extra)
