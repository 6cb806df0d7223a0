"""Checks at the fixed points (float64 reference, :attr:`Probe.reference`): ``contraction`` and
``uniqueness``. Both are reported always and judged only when the caller claims contraction
(``check_model(contractive=True)``, ``newllm verify --contractive``)."""

from __future__ import annotations

import math

import torch

from ..config import SolverConfig
from ..solve import solve
from .probe import Probe, anderson, labels
from .report import CheckResult

#: uniqueness: the l2 threshold every start is solved to, its iteration budget (Anderson) and stall
#: window (a start whose lowest residual has not improved by 1% in that many iterations stops).
UNIQUE_THRESHOLD = 1e-8
UNIQUE_ITERATIONS = 500
UNIQUE_STALL = 100
#: uniqueness: random starts are standard normal times these multiples of the fixed points' RMS entry.
RANDOM_SCALES = (1.0, 10.0)
#: Rounding allowance added to the tol / (1 - k) bound (float64 contexts).
ROUNDING = 1e-9


def contraction(probe: Probe) -> CheckResult:
    """σ_max and ρ of each token's Jacobian at its float64 fixed point (exact up to C = 512: full
    Jacobian; above: Lanczos lower bound / Arnoldi estimate). Judged only when contraction is claimed:
    then every fixed point must be found and σ_max < 1 at each."""
    ref, spec = probe.reference, probe.spectrum
    sig, rho = spec["sigma_max"], spec["spectral_radius"]
    found = ref.converged.cpu()
    nums = {
        "sigma_max": sig.values.tolist(),
        "spectral_radius": rho.values.tolist(),
        "kind": sig.kind,
        "method": sig.method,
        "max_sigma_max": sig.max,
        "max_spectral_radius": rho.max,
        "fixed_points_found": int(found.sum()),
        "tokens": probe.n,
    }
    head = (
        f"max σ_max {sig.max:.4f} ({sig.kind}), max ρ {rho.max:.4f}; fixed points found "
        f"{int(found.sum())}/{probe.n}"
    )
    if not probe.contractive:
        return CheckResult(
            "contraction", "skipped", f"reported, not judged (no contraction claimed): {head}", nums
        )
    problems = []
    if not bool(found.all()):
        problems.append(f"no fixed point found for {labels(probe.token_ids, (~found).nonzero().flatten())}")
    over = (~(sig.values < 1)).nonzero().flatten()
    if over.numel():
        worst = int(sig.values.nan_to_num(nan=math.inf).argmax())
        problems.append(
            f"σ_max >= 1 at {labels(probe.token_ids, over)} (worst {labels(probe.token_ids, [worst])}: "
            f"{float(sig.values[worst]):.4f})"
        )
    note = "" if sig.kind == "exact" else " (σ_max is a lower bound above C = 512: evidence, not proof)"
    return CheckResult.judged(
        "contraction", not problems, (head + note) if not problems else "; ".join(problems), **nums
    )


def _starts(probe: Probe, fixed: torch.Tensor) -> dict[str, dict]:
    """Solve settings per start: reset (initial context), random (``seed``), carry (the probe tokens as
    one sequence, each token starting from the previous one's solution)."""
    scale = float(fixed.pow(2).mean().sqrt()) or 1.0
    g = probe.generator(5)
    out: dict[str, dict] = {"reset": {}, "carry": {"context_mode": "carry"}}
    for s in RANDOM_SCALES:
        out[f"random x{s:g}"] = {
            "init": torch.randn(fixed.shape, generator=g, dtype=torch.float64) * s * scale
        }
    return out


def _distances(probe: Probe, fixed: torch.Tensor) -> tuple[dict, dict]:
    """Per start: l2 distance ``[N]`` of the solution from the reference, and the unconverged positions."""
    cfg = anderson("l2", UNIQUE_THRESHOLD, UNIQUE_ITERATIONS, UNIQUE_STALL)
    dist, unconverged = {}, {}
    for name, kw in _starts(probe, fixed).items():
        init = kw.get("init")
        mode = kw.get("context_mode", "reset")
        dev = probe.reference.context.device
        res = solve(
            probe.model64,
            probe.token_ids,
            SolverConfig(**{**cfg.to_dict(), "context_mode": mode}),
            init=None if init is None else init.to(dev),
        )
        dist[name] = torch.linalg.vector_norm(res.context.double().cpu() - fixed, dim=-1)
        unconverged[name] = (~res.converged.cpu()).nonzero().flatten()
    return dist, unconverged


def uniqueness(probe: Probe) -> CheckResult:
    """Reset, random and carry starts reach the same fixed point: each lands within
    ``(tol + r_ref) / (1 - k) + 1e-9`` (l2) of the float64 reference, ``tol`` = :data:`UNIQUE_THRESHOLD`,
    ``r_ref`` the reference's largest l2 residual, ``k`` the largest σ_max at the fixed points (float64).
    Run and judged only when contraction is claimed and ``k < 1`` (without it there is no bound)."""
    ref = probe.reference
    k = probe.spectrum["sigma_max"].max
    if not probe.contractive or not k < 1:
        why = "no contraction claimed" if not probe.contractive else f"k = max σ_max = {k:.4f} >= 1: no bound"
        return CheckResult("uniqueness", "skipped", f"not run ({why})", {"k": k})
    r_ref = float(ref.residual["l2"].double().nan_to_num(nan=math.inf).max())
    bound = (UNIQUE_THRESHOLD + r_ref) / (1 - k) + ROUNDING
    dist, unconverged = _distances(probe, ref.context.double().cpu())
    problems = [
        f"{s}: {labels(probe.token_ids, u)} did not converge" for s, u in unconverged.items() if u.numel()
    ]
    for s, d in dist.items():
        far = (~(d <= bound)).nonzero().flatten()
        if far.numel():
            problems.append(
                f"{s}: {labels(probe.token_ids, far)} landed {float(d.nan_to_num(nan=math.inf).max()):.3g} "
                f"from the reference (bound {bound:.3g})"
            )
    worst = max(float(d.nan_to_num(nan=math.inf).max()) for d in dist.values())
    nums = {
        "bound": bound,
        "k": k,
        "max_distance": {s: float(d.max()) for s, d in dist.items()},
        "unconverged": {s: len(u) for s, u in unconverged.items()},
    }
    detail = (
        f"{len(dist)} starts ({', '.join(dist)}) land within {worst:.3g} of the reference fixed point "
        f"<= (tol + r_ref)/(1 - k) = {bound:.3g} (k = {k:.4f})"
    )
    return CheckResult.judged(
        "uniqueness", not problems, detail if not problems else "; ".join(problems), **nums
    )
