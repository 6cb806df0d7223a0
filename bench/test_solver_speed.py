"""Batched solve vs the seeds' per-token Python loop: same model, same tokens, no early stop.

Run: ``pytest bench -n 0 --benchmark-json bench.json``. The ratio lands in ``extra_info``.
"""

from __future__ import annotations

import time

import pytest
import torch

from newllm import ModelConfig, SolverConfig, build_model, solve, spread_token_ids

TOKENS = 512
ITERATIONS = 200


def per_token_loop(model, ids: list[int], iterations: int) -> torch.Tensor:
    """The seeds' shape of loop: one token at a time, one step at a time."""
    out = []
    with torch.no_grad():
        for t in ids:
            e = model.embed([t])
            c = model.initial_context((1,))
            for _ in range(iterations):
                c = model.step(e, c)
            out.append(c)
    return torch.cat(out)


@pytest.mark.parametrize("arch", ["layerwise", "sequential"])
def test_batched_vs_per_token_loop(benchmark, arch):
    model = build_model(ModelConfig(arch=arch)).eval()
    ids = spread_token_ids(TOKENS, model.config.vocab_size)
    cfg = SolverConfig(
        max_iterations=ITERATIONS, threshold=1e-30, divergence_factor=None
    )  # never stops early

    t0 = time.perf_counter()
    loop_ctx = per_token_loop(model, ids, ITERATIONS)
    loop_s = time.perf_counter() - t0

    res = benchmark.pedantic(solve, args=(model, ids, cfg), rounds=3, iterations=1)
    batched_s = benchmark.stats.stats.min
    assert int(res.iterations.min()) == ITERATIONS
    torch.testing.assert_close(res.context, loop_ctx, rtol=1e-4, atol=1e-4)
    ratio = loop_s / batched_s
    benchmark.extra_info.update(
        arch=arch,
        tokens=TOKENS,
        iterations=ITERATIONS,
        per_token_loop_s=loop_s,
        batched_min_s=batched_s,
        speedup=ratio,
        token_iterations_per_s=TOKENS * ITERATIONS / batched_s,
        threads=torch.get_num_threads(),
    )
    print(f"\n{arch}: batched {batched_s:.3f}s vs per-token loop {loop_s:.2f}s -> {ratio:.1f}x")
