"""Speed of the batched solve, reported as ratios measured in one run:

* ``test_throughput_vs_roofline``: token-iterations per second and achieved GFLOP/s (exact matmul FLOPs
  of the step, :func:`newllm.tools.perf.step_flops`) as a fraction of a plain matmul chain of the same shapes,
  rows and dtype (:class:`newllm.tools.perf.MatmulChain`), timed interleaved with the solve.
* ``test_batched_vs_per_token_loop``: the batched solve against the seeds' per-token Python loop.

No early stop: ``warmup = max_iterations - 1`` checks convergence only at the last iteration, so every
token runs every iteration. CUDA cases (larger batches, float32 and bf16) are skipped without a GPU.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from bench.cases import clock, machine, token_ids
from newllm import SolverConfig, build_model, solve
from newllm.matrix import ARCHITECTURES, model_config
from newllm.matrix import regression as R
from newllm.tools.perf import MatmulChain, step_flops, timed

#: (device, dtype, tokens, iterations): CPU at the seeds' 512 tokens; CUDA also 64 samples x 512 tokens.
SPEED_CASES = [
    ("cpu", torch.float32, 512, 50),
    pytest.param("cuda", torch.float32, 512, 100, marks=pytest.mark.cuda),
    pytest.param("cuda", torch.float32, 64 * 512, 100, marks=pytest.mark.cuda),
    pytest.param("cuda", torch.bfloat16, 64 * 512, 100, marks=pytest.mark.cuda),
]
SPEED_IDS = ["cpu-float32-512", "cuda-float32-512", "cuda-float32-32768", "cuda-bfloat16-32768"]
ROUNDS = 5
LOOP_TOKENS = 512
#: Both sides scale linearly in the iterations; 20 keeps the per-token loop to seconds on CPU.
LOOP_ITERATIONS = 20


def no_early_stop(iterations: int) -> SolverConfig:
    return SolverConfig(max_iterations=iterations, warmup=iterations - 1, divergence_factor=None)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize(("device", "dtype", "tokens", "iterations"), SPEED_CASES, ids=SPEED_IDS)
def test_throughput_vs_roofline(benchmark, arch, device, dtype, tokens, iterations):
    model = build_model(model_config(arch), seed=R.SEED).to(device, dtype).eval()
    ids = token_ids(tokens, model.config.vocab_size)
    cfg = no_early_stop(iterations)
    chain = MatmulChain(model.config, tokens, device=device, dtype=dtype)
    clock_name, tick = clock(device)
    chain_s: list[float] = []
    solve_s: list[float] = []

    def setup():
        chain_s.append(chain.seconds(repeat=3, clock=tick))  # interleaved with the solve rounds
        return (), {}

    def target():
        seconds, res = timed(lambda: solve(model, ids, cfg), device, tick)
        solve_s.append(seconds)
        return res

    res = benchmark.pedantic(target, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    token_iterations = int(res.evaluations.sum())
    assert token_iterations == tokens * iterations, "a token stopped early"
    flops = token_iterations * step_flops(model.config)
    best, med = min(solve_s), statistics.median(solve_s)
    roofline = chain.flops / min(chain_s)
    benchmark.extra_info.update(
        kind="throughput",
        arch=arch,
        structure=list(model.config.blocks),
        **machine(device, clock_name),
        dtype=str(dtype).removeprefix("torch."),
        tokens=tokens,
        iterations=iterations,
        step_flops=step_flops(model.config),
        token_iterations_per_s=token_iterations / best,
        solve_gflops=flops / best / 1e9,
        roofline_gflops=roofline / 1e9,
        roofline_fraction=flops / best / roofline,
        roofline_fraction_median=(flops / med) / (chain.flops / statistics.median(chain_s)),
    )
    print(
        f"\n{arch} {device} {dtype} {tokens} tokens: {flops / best / 1e9:.1f} GFLOP/s = "
        f"{flops / best / roofline:.2f} of a same-shape matmul chain ({roofline / 1e9:.1f} GFLOP/s)"
    )


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


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_batched_vs_per_token_loop(benchmark, device, arch):
    model = build_model(model_config(arch), seed=R.SEED).to(device).eval()
    ids = token_ids(LOOP_TOKENS, model.config.vocab_size)
    cfg = no_early_stop(LOOP_ITERATIONS)
    clock_name, tick = clock(device)
    solve_s: list[float] = []

    def target():
        seconds, res = timed(lambda: solve(model, ids, cfg), device, tick)
        solve_s.append(seconds)
        return res

    res = benchmark.pedantic(target, rounds=3, warmup_rounds=1)
    loop_s, loop_ctx = timed(lambda: per_token_loop(model, ids, LOOP_ITERATIONS), device, tick)
    assert int(res.iterations.min()) == LOOP_ITERATIONS
    torch.testing.assert_close(res.context, loop_ctx, rtol=1e-4, atol=1e-4)
    batched = statistics.median(solve_s)
    benchmark.extra_info.update(
        kind="loop_speedup",
        arch=arch,
        structure=list(model.config.blocks),
        **machine(device, clock_name),
        tokens=LOOP_TOKENS,
        iterations=LOOP_ITERATIONS,
        per_token_loop_s=loop_s,
        batched_median_s=batched,
        speedup=loop_s / batched,
        token_iterations_per_s=LOOP_TOKENS * LOOP_ITERATIONS / batched,
    )
    print(
        f"\n{arch} {device}: batched {batched:.3f}s vs per-token loop {loop_s:.2f}s -> {loop_s / batched:.1f}x"
    )
