"""Measure issue 17's goals on the peer problems (bench/peers.py) in one run and write
reports/certify/report.json and report.md.

Per problem: newllm vs TorchDEQ (:func:`bench.peers.compare`, when torchdeq is installed); the error
bounds of newllm's Anderson contexts against the distance to the fixed point that Newton refinement
(``rel`` < 1e-10) reaches from them; implicit vs dense exact parameter gradients on
:data:`GRAD_TOKENS` tokens; Anderson's CPU time per token-evaluation over Picard's; and the
multiplicity probe on :data:`PROBE_TOKENS` tokens.

Run: ``python -m bench.certify_report [--out reports/certify]`` (one torch thread; about 10 min on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

import torch

from bench import peers
from newllm import SolverConfig
from newllm.certify import certify_map
from newllm.implicit import fixed_point
from newllm.multiplicity import fixed_points
from newllm.result import BoundKind
from newllm.runs.jsonio import dumps
from newllm.solvers import iterate

GRAD_TOKENS = 8
PROBE_TOKENS = 16
REFINE = SolverConfig(method="newton", metric="rel", threshold=1e-10, max_iterations=30, divergence_factor=None)
#: The forward solve of the gradient check: Newton from newllm's Anderson contexts to rel < 1e-12.
TIGHT = SolverConfig(method="newton", metric="rel", threshold=1e-12, max_iterations=30, divergence_factor=None)
#: Full-size untrained models (dims 256, float32, 512 spread tokens) for Anderson's cost per evaluation.
FULL_SIZE = ("layerwise", "sequential")


def bounds(p: peers.Problem, ours: dict[str, Any]) -> dict[str, Any]:
    """Certify newllm's converged contexts; the true distance from Newton refinement to rel < 1e-10."""
    ok = peers.converged(p, ours["context"])
    c = ours["context"][ok]
    idx = ok.nonzero().flatten()
    cert = certify_map(lambda z, r: p.fn(z, idx[r]), c)
    with torch.no_grad():
        ref = iterate(lambda z, r: p.fn(z, idx if r is None else idx[r]), c.clone(), REFINE)
    dist = torch.linalg.vector_norm(c - ref.context, dim=-1)
    certified = (cert.kind != BoundKind.NONE) & ref.converged
    ratio = cert.bound[certified] / dist[certified].clamp_min(1e-300)
    kinds = [BoundKind(int(k)).label for k in cert.kind]
    return {
        "converged": int(ok.sum()),
        "refined": int(ref.converged.sum()),
        "certified": int(certified.sum()),
        "kinds": {k: kinds.count(k) for k in ("contraction", "linearised", "none")},
        "bound_holds": int((ratio >= 1).sum()),
        "within_10x": int(((ratio >= 1) & (ratio <= 10)).sum()),
        "ratio_median": float(ratio.median()) if ratio.numel() else None,
        "ratio_max": float(ratio.max()) if ratio.numel() else None,
        "max_distance_uncertified": float(dist[~certified & ref.converged].max()) if bool((~certified & ref.converged).any()) else None,
        "max_relative_distance": float((dist / torch.linalg.vector_norm(ref.context, dim=-1)).max()),
        "sigma_min_range": [float(cert.sigma_min.min()), float(cert.sigma_min.max())],
    }


def gradients(p: peers.Problem, start: torch.Tensor) -> dict[str, Any]:
    """Implicit (Broyden backward), one-step and phantom vs the dense exact implicit gradient of a
    fixed random linear loss over all parameters, on the first GRAD_TOKENS tokens (float64), at the
    fixed points Newton reaches from ``start [N, C]`` (newllm's Anderson contexts)."""
    ids = p.ids[:GRAD_TOKENS]
    init = start[:GRAD_TOKENS]
    w = torch.randn(len(ids), p.model.config.context_dim, generator=torch.Generator().manual_seed(0), dtype=peers.F64)
    grads, info = {}, {}
    for mode, kw in {"exact": {"backward": "dense"}, "implicit": {}, "one_step": {"gradient": "one_step"},
                     "phantom": {"gradient": "phantom", "phantom_steps": 5}}.items():
        p.model.zero_grad()
        fp = fixed_point(p.model, ids, TIGHT, init=init, **kw)
        (fp.context * w).sum().backward()
        grads[mode] = torch.cat([q.grad.flatten() for q in p.model.parameters() if q.grad is not None])
        if mode == "implicit":
            info["forward_converged"] = int(fp.forward.converged.sum())
            info["backward_converged"] = int(fp.backward.solves[0].converged.sum())
            info["backward_nfe_median"] = float(fp.backward.solves[0].evaluations.double().median())
            c = fp.forward.context.detach()
            info["sigma_min"] = certify_map(p.fn, c).sigma_min.min().item()  # rows 0..7: the first tokens
    exact = grads.pop("exact")
    for mode, g in grads.items():
        info[mode] = {
            "cosine": float(torch.nn.functional.cosine_similarity(g, exact, dim=0)),
            "relative_error": float((g - exact).norm() / exact.norm()),
        }
    info["tokens"] = len(ids)
    return info


def picard_ratio(p: peers.Problem) -> dict[str, Any]:
    """CPU seconds per token-evaluation, Anderson over Picard, on the same problem in one run."""
    out = {m: peers.run_newllm(p, m) for m in ("picard", "anderson")}
    per = {m: r["seconds"] / float(r["nfe"].sum()) for m, r in out.items()}
    return {"ratio": per["anderson"] / per["picard"], "seconds_per_token_evaluation": per,
            "token_evaluations": {m: float(r["nfe"].sum()) for m, r in out.items()}}


def full_size_ratio(arch: str) -> dict[str, Any]:
    """:func:`picard_ratio` on the seeds' full-size untrained model (float32, 512 tokens, rel < 1e-4)."""
    from newllm.matrix import initial_model

    model = initial_model(peers.model_config(arch), 0)
    ids = peers.matrix_token_ids("spread", 512, model.config.vocab_size)
    with torch.no_grad():
        emb = model.embed(torch.tensor(ids))
    p = peers.Problem(f"full-size-untrained-{arch}", model, emb, ids)
    p.zeros = lambda: torch.zeros(len(ids), model.config.context_dim)  # type: ignore[method-assign]
    return {"problem": p.name, **picard_ratio(p)}


def multiplicity(p: peers.Problem) -> dict[str, Any]:
    probe = fixed_points(p.model, p.ids[:PROBE_TOKENS], random_starts=2, seed=0)
    d = probe.to_dict()
    pts = [f for ps in probe.points for f in ps]
    return {"tokens": PROBE_TOKENS, "counts": d["counts"], "tokens_with_several": d["tokens_with_several"],
            "tokens_with_none": d["tokens_with_none"], "degenerate_points": sum(f.degenerate for f in pts),
            "sigma_max_range": [min(f.sigma_max for f in pts), max(f.sigma_max for f in pts)] if pts else None}


def measure(name: str, have_peers: bool) -> dict[str, Any]:
    p = peers.problem(name)
    row = peers.compare(p) if have_peers else {"problem": name, "solvers": {}}
    ours = peers.run_newllm(p)
    row["losses"] = peers.losses(row) if have_peers else []
    row["bounds"] = bounds(p, ours)
    row["gradients"] = gradients(p, ours["context"])
    row["anderson_over_picard"] = picard_ratio(p)
    row["multiplicity"] = multiplicity(p)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/certify")
    ap.add_argument("--problems", default=",".join(peers.PROBLEMS))
    ap.add_argument("--no-full-size", dest="full_size", action="store_false", help="skip the 256-dim ratio")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    have = importlib.util.find_spec("torchdeq") is not None
    rows = [measure(n, have) for n in args.problems.split(",")]
    doc = {"settings": {"dim": peers.DIM, "tokens": peers.TOKENS, "threshold": peers.THRESHOLD,
                        "max_evaluations": peers.MAX_EVALUATIONS, "dtype": "float64", "seed": 0,
                        "torch": torch.__version__, "torchdeq": have}, "problems": rows,
           "full_size_anderson_over_picard": [full_size_ratio(a) for a in FULL_SIZE if args.full_size]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(dumps(doc) + "\n")
    print(dumps(doc))
    return 0 if not any(r["losses"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

