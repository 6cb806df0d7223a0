"""Function evaluations to a tight threshold (``rel`` < 1e-4): Picard vs Anderson.

Untrained full-size models (dims 256, eval mode), 512 tokens from zeros, at most 500 evaluations
per token. Reported in ``extra_info`` per method: median evaluations per token (a token that did
not converge counts 500), the fraction converged, and the speed-up (Picard median / Anderson
median). Goal (issue 4): >= 3x fewer evaluations and no lower converged fraction.

Run: ``pytest bench/test_anderson.py -n 0 --benchmark-json anderson.json``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from newllm import build_model, solve
from newllm.matrix import model_config, rules, token_ids

TOKENS = 512
MAX_EVALUATIONS = 500
#: The decision rule (newllm.matrix.rules): rel < 1e-4, here with up to MAX_EVALUATIONS iterations.
RULE = "rel1e-4"


def evaluations(model, ids, method: str) -> dict[str, float]:
    rule = rules(model.context_dim)[RULE]
    cfg = replace(rule.solver_config(method), max_iterations=MAX_EVALUATIONS)
    res = solve(model, ids, cfg)
    ev = res.evaluations.double()
    return {
        "median_evaluations": float(ev.median()),
        "mean_evaluations": float(ev.mean()),
        "converged": res.rate,
        "converged_median_evaluations": float(ev[res.converged].median())
        if bool(res.converged.any())
        else None,
    }


@pytest.mark.parametrize("arch", ["layerwise", "sequential"])
def test_anderson_vs_picard_evaluations(benchmark, arch):
    model = build_model(model_config(arch)).eval()
    ids = token_ids("spread", TOKENS, model.config.vocab_size)
    picard = evaluations(model, ids, "picard")
    anderson = benchmark.pedantic(evaluations, args=(model, ids, "anderson"), rounds=1, iterations=1)
    speedup = picard["median_evaluations"] / anderson["median_evaluations"]
    benchmark.extra_info.update(
        arch=arch,
        tokens=TOKENS,
        rule=RULE,
        threshold_rel=rules(model.context_dim)[RULE].threshold,
        max_evaluations=MAX_EVALUATIONS,
        picard=picard,
        anderson=anderson,
        median_speedup=speedup,
        threads=torch.get_num_threads(),
    )
    print(
        f"\n{arch}: Picard median {picard['median_evaluations']:.0f} evals, {100 * picard['converged']:.1f}% "
        f"converged; Anderson median {anderson['median_evaluations']:.0f}, {100 * anderson['converged']:.1f}% "
        f"-> {speedup:.1f}x"
    )
    assert anderson["converged"] >= picard["converged"]
    assert speedup >= 3.0
