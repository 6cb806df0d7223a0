"""Iterations-to-converge per architecture: untrained and Phase 1-trained, two decision rules, Picard and
Anderson, 1 to 512 tokens. The counts (deterministic given the seeds) land in ``extra_info["counts"]``;
``python -m newllm.tools.gate`` gates on ``extra_info["configurations"]``. The time of the one solve is for information.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from bench.cases import METHODS, RULES, THREADS, TOKEN_COUNTS, device_name
from newllm import solve
from newllm.matrix import ARCHITECTURES
from newllm.matrix import regression as R
from newllm.tools.perf import iteration_counts, synced

CASES = list(itertools.product(ARCHITECTURES, R.STATES, RULES, METHODS, TOKEN_COUNTS))


@pytest.mark.parametrize(
    ("arch", "state", "rule", "method", "tokens"), CASES, ids=["-".join(map(str, c)) for c in CASES]
)
def test_iterations_to_converge(benchmark, models, device, arch, state, rule, method, tokens):
    model = models.get(arch, state, device)
    ids, cfg = R.problem(model, rule, method, tokens)

    res = benchmark.pedantic(synced(solve, device), args=(model, ids, cfg), rounds=1, iterations=1)

    counts = iteration_counts(res)
    assert counts["tokens"] == tokens
    assert 1 <= counts["median_iterations"] <= counts["p90_iterations"] <= counts["max_iterations"]
    assert counts["max_iterations"] <= cfg.max_iterations
    assert bool(torch.isfinite(res.context).all())
    conv = res.converged
    assert bool((res.residual[cfg.metric][conv] < cfg.threshold).all()), (
        "a converged token is above the threshold"
    )
    if method == "picard":
        assert torch.equal(res.evaluations, res.iterations), "Picard evaluates f once per iteration"
    name, entry = R.entry(res, cfg, device=str(device), arch=arch, state=state, rule=rule, method=method)
    extra = {
        "kind": "iterations",
        "arch": arch,
        "structure": list(model.config.blocks),
        "state": state,
        "rule": rule,
        "metric": cfg.metric,
        "threshold": cfg.threshold,
        "method": method,
        "tokens": tokens,
        "max_iterations_cap": cfg.max_iterations,
        "device": str(device),
        "device_name": device_name(device),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "threads": THREADS,
        "rounding_sensitive": entry["rounding_sensitive"],
        "counts": counts,
        "configurations": [{"name": name, **entry}],
    }
    if state == "trained":
        epochs = models.training[(arch, str(torch.device(device)))]
        extra["training"] = {
            "config": R.spec(arch, state, device=str(device), threads=THREADS).phase1().to_dict(),
            "epochs": [
                {k: e[k] for k in ("epoch", "rate", "mean_iterations", "optimizer_steps")} for e in epochs
            ],
        }
    benchmark.extra_info.update(extra)
