"""newllm vs TorchDEQ 0.1.0 on the same fixed-point problems, and the certification measurements.

A problem (:data:`PROBLEMS`) is a model of the experiment matrix (``newllm.matrix``: architecture x
recipe, seed 0, dims :data:`DIM`, trained ones compacted to the solved ids and trained on them) and
its :data:`TOKENS` ``spread`` tokens, solved in float64, eval mode, from zero contexts, to
``rel`` < :data:`THRESHOLD` with at most :data:`MAX_EVALUATIONS` evaluations of ``f`` per token.

Every solver's output is judged by one independent check (:func:`converged`: ``rel`` of one more
evaluation of ``f`` at the returned context, strictly below :data:`THRESHOLD`). NFE per token:
newllm stops tokens one by one (``FixedPointResult.evaluations``); TorchDEQ evaluates the whole
batch until its batch-wide stop, so every token costs the number of calls of ``f`` it made. Times are
this process's CPU time with one torch thread, compared as ratios within one run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from newllm import SolverConfig
from newllm.matrix import ModelSpec, build, model_config
from newllm.matrix import token_ids as matrix_token_ids
from newllm.metrics import rel
from newllm.model import CVFPModel
from newllm.solvers import iterate

#: name -> (architecture, matrix recipe).
PROBLEMS: dict[str, tuple[str, str]] = {
    "untrained-layerwise": ("layerwise", "untrained"),
    "untrained-sequential": ("sequential", "untrained"),
    "seeds001-layerwise": ("layerwise", "001"),
    "seeds001-sequential": ("sequential", "001"),
    "jacobian-layerwise": ("layerwise", "jacobian"),
}
DIM = 64
TOKENS = 64
THRESHOLD = 1e-4
MAX_EVALUATIONS = 500
F64 = torch.float64


@dataclass
class Problem:
    """A float64 eval-mode model, the embeddings ``emb [N, E]`` of its tokens and the row map."""

    name: str
    model: CVFPModel
    emb: torch.Tensor
    ids: list[int]

    def fn(self, z: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.step(self.emb if rows is None else self.emb[rows], z)

    def zeros(self) -> torch.Tensor:
        return torch.zeros(self.emb.shape[0], self.model.config.context_dim, dtype=F64)


def problem(name: str) -> Problem:
    """Build (train once through the matrix cache when the recipe trains) the problem ``name``."""
    arch, recipe = PROBLEMS[name]
    cfg = model_config(arch, embed_dim=DIM, context_dim=DIM, hidden_dim=DIM)
    ids = matrix_token_ids("spread", TOKENS, cfg.vocab_size)
    trained = recipe != "untrained"
    spec = ModelSpec(cfg, seed=0, recipe=recipe, samples=(tuple(ids),) if trained else (), compact=trained)
    built = build(spec)
    model = built.model.to(F64).eval()
    rows = built.ids(ids)
    with torch.no_grad():
        emb = model.embed(torch.tensor(rows)).to(F64)
    return Problem(name, model, emb, rows)


def converged(p: Problem, z: torch.Tensor) -> torch.Tensor:
    """The independent check: bool ``[N]``, ``rel(f(z), z) < THRESHOLD`` (non-finite rows fail)."""
    with torch.no_grad():
        r = rel(p.fn(z), z)
    return torch.isfinite(r) & (r < THRESHOLD)


def _timed(run: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.process_time()
    out = run()
    return out, time.process_time() - t0


def run_newllm(p: Problem, method: str = "anderson") -> dict[str, Any]:
    """newllm's ``method`` on ``p``: contexts, per-token NFE, CPU seconds."""
    cfg = SolverConfig(method=method, metric="rel", threshold=THRESHOLD, max_iterations=MAX_EVALUATIONS)
    with torch.no_grad():
        res, seconds = _timed(lambda: iterate(p.fn, p.zeros(), cfg))
    return {"context": res.context, "nfe": res.evaluations.double(), "seconds": seconds, "result": res}


def run_torchdeq(p: Problem, method: str) -> dict[str, Any]:
    """TorchDEQ 0.1.0's ``method`` (``broyden`` | ``anderson``, its defaults otherwise) on ``p``."""
    from torchdeq.solver import get_solver

    calls = [0]

    def f(z: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return p.fn(z)

    solver = get_solver(method)
    with torch.no_grad():
        out, seconds = _timed(lambda: solver(f, p.zeros(), max_iter=MAX_EVALUATIONS, tol=THRESHOLD, stop_mode="rel"))
    z = out[0]
    return {"context": z, "nfe": torch.full((z.shape[0],), float(calls[0]), dtype=F64), "seconds": seconds}


def compare(p: Problem, peers: tuple[str, ...] = ("broyden", "anderson")) -> dict[str, Any]:
    """Per solver (``newllm-anderson``, ``torchdeq-<peer>``): converged count (the independent check),
    median NFE and CPU seconds, and newllm's wall-time ratio to each peer."""
    runs = {"newllm-anderson": run_newllm(p)}
    for peer in peers:
        runs[f"torchdeq-{peer}"] = run_torchdeq(p, peer)
    out: dict[str, Any] = {"problem": p.name, "tokens": len(p.ids), "solvers": {}}
    for name, r in runs.items():
        out["solvers"][name] = {
            "converged": int(converged(p, r["context"]).sum()),
            "median_nfe": float(r["nfe"].median()),
            "seconds": r["seconds"],
        }
    ours = out["solvers"]["newllm-anderson"]
    out["wall_ratio"] = {
        peer: ours["seconds"] / max(out["solvers"][f"torchdeq-{peer}"]["seconds"], 1e-9) for peer in peers
    }
    return out


def losses(row: dict[str, Any]) -> list[str]:
    """Where newllm's Anderson loses to a peer on a :func:`compare` row: fewer converged tokens, or a
    higher median NFE against a peer converging at least as many (counts, deterministic; wall time
    is reported as a ratio, not gated)."""
    ours, out = row["solvers"]["newllm-anderson"], []
    for name, s in row["solvers"].items():
        if name == "newllm-anderson":
            continue
        if ours["converged"] < s["converged"]:
            out.append(f"{row['problem']}: {name} converges {s['converged']} tokens, newllm {ours['converged']}")
        elif ours["converged"] == s["converged"] and ours["median_nfe"] > s["median_nfe"]:
            out.append(f"{row['problem']}: {name} median NFE {s['median_nfe']:g}, newllm {ours['median_nfe']:g}")
    return out
