"""The regression models and configurations shared by the benchmarks (``bench/``) and the convergence
properties (family 4): the seeds' full-size models at seed 0, untrained or trained once per code
version, solved from zero contexts in eval mode with one torch thread; one configuration is
(device, architecture, state, decision rule, solver method, token count) on the ``spread`` ids.

``trained`` is recipe 001 (the seeds' 3 epochs, Adam lr 1e-4, <= 50 inner iterations, mse < 0.01,
clip 1.0, dropout 0.1) with the batched loop, one batch of the four samples ``spread_token_ids(n)``
for n in :data:`TRAINING_COUNTS`, Phase 1 seed 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from ..config import SolverConfig
from ..model import CVFPModel
from ..result import FixedPointResult
from ..solve import solve
from .axes import ARCHITECTURES, model_config, token_ids
from .axes import rules as _rules
from .baseline import record
from .models import ModelSpec

SEED = 0
STATES = {"untrained": "untrained", "trained": "001"}
TRAINING_COUNTS = (1, 10, 100, 512)
THREADS = 1


def spec(arch: str, state: str, device: str = "cpu", threads: int = THREADS, **overrides: Any) -> ModelSpec:
    """The regression model ``arch`` x ``state`` (``untrained`` | ``trained``), Phase 1 on ``device``."""
    if state not in STATES:
        raise ValueError(f"state must be one of {list(STATES)}, got {state!r}")
    cfg = model_config(arch, **overrides)
    trained = STATES[state] != "untrained"
    samples = tuple(tuple(token_ids("spread", n, cfg.vocab_size)) for n in TRAINING_COUNTS) if trained else ()
    return ModelSpec(
        cfg, seed=SEED, recipe=STATES[state], samples=samples, loop="batched", device=device, threads=threads
    )


def settings(threads: int = THREADS) -> dict[str, Any]:
    """What every regression configuration is made under (a baseline's ``settings``)."""
    t = spec("layerwise", "trained", threads=threads)
    return {
        "architectures": {
            k: {f: list(v) if isinstance(v, tuple) else v for f, v in a.items()}
            for k, a in ARCHITECTURES.items()
        },
        "model": {
            k: v for k, v in t.config.to_dict().items() if k not in ("arch", "structure", "num_layers")
        },
        "seed": SEED,
        "training": {
            "recipe": t.recipe,
            "phase1": t.phase1().to_dict(),
            "samples": f"spread ids at {list(TRAINING_COUNTS)}",
        },
        "token_set": "spread",
        "start": "zeros",
        "threads": threads,
    }


def name(device: str, arch: str, state: str, rule: str, method: str, tokens: int) -> str:
    return f"{torch.device(device).type}/{arch}/{state}/{rule}/{method}/{tokens}"


def problem(model: CVFPModel, rule: str, method: str, tokens: int) -> tuple[list[int], SolverConfig]:
    """The ids and solver settings of a configuration for ``model``."""
    r = _rules(model.context_dim)[rule]
    return token_ids("spread", tokens, model.config.vocab_size), r.solver_config(method)


def entry(
    result: FixedPointResult, cfg: SolverConfig, *, device: str, arch: str, state: str, rule: str, method: str
) -> tuple[str, dict[str, Any]]:
    """``(name, entry)`` of a solved configuration, the entry in the baseline format."""
    tokens = result.num_tokens
    out = {
        "settings": {
            "device": torch.device(device).type,
            "arch": arch,
            "state": state,
            "rule": {
                "name": rule,
                "metric": cfg.metric,
                "threshold": cfg.threshold,
                "warmup": cfg.warmup,
                "max_iterations": cfg.max_iterations,
            },
            "method": method,
            "tokens": tokens,
        },
        **record(result),
        # Anderson's least squares amplify float rounding at the strict rule: its counts move between
        # CPU kernels, so the gate allows more there (newllm.tools.gate.SENSITIVE_SLACK).
        "rounding_sensitive": method == "anderson" and cfg.metric == "rel",
    }
    return name(device, arch, state, rule, method, tokens), out


def measure(
    model: CVFPModel, *, device: str, arch: str, state: str, rule: str, method: str, tokens: int
) -> tuple[str, dict[str, Any]]:
    """Solve one configuration with :data:`THREADS` torch threads: ``(name, entry)``."""
    ids, cfg = problem(model, rule, method, tokens)
    with threads(THREADS):
        res = solve(model, ids, cfg)
    return entry(res, cfg, device=device, arch=arch, state=state, rule=rule, method=method)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (counts are deterministic for a fixed number)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
