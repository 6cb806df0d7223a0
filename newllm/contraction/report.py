"""``contraction_report``: every contraction estimate for a set of tokens, at their fixed points, in eval mode.

Steps, on a copy of the model in ``dtype`` (float64 by default, so rounding does not blur the
estimates):

1. plain iteration (Picard, damping 1) from zeros for ``picard_iterations`` with the trace
   recorded, and the observed factor fitted to its l2 tail;
2. Anderson from Picard's last iterate to ``rel < threshold``: the fixed point ``c*``;
3. at ``c*``: σ_max and ρ (``spectral="exact"``: from the full Jacobian; ``iterative``: power
   iteration and Arnoldi; ``auto``: exact up to ``EXACT_MAX_DIM``), the pair ratio around ``c*``
   (a lower bound on the global Lipschitz constant), and the collapse diagnostics of the ``c*``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .. import diagnostics, protocol
from ..config import SolverConfig
from ..protocol import ContextModel
from ..solve import solve
from .estimate import Estimate
from .factor import observed_factor
from .jacobian import exact
from .maps import eval_mode, model_map
from .pairs import DEFAULT_RADII, pair_ratio
from .spectral import EXACT_MAX_DIM, arnoldi, sigma_max

SPECTRAL = ("auto", "exact", "iterative")
#: The steps reported to ``progress``.
STEPS = ("picard", "anderson", "jacobian", "pair ratio")
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def contraction_report(
    model: ContextModel,
    token_ids: torch.Tensor | Sequence[int],
    *,
    picard_iterations: int = 1000,
    threshold: float = 1e-10,
    refine_iterations: int = 2000,
    spectral: str = "auto",
    power_iterations: int = 300,
    krylov_dim: int = 60,
    pairs: int = 8,
    radii: tuple[float, ...] = DEFAULT_RADII,
    ascent_steps: int = 10,
    dtype: str = "float64",
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """A JSON-ready dict: per-token and max/median ``sigma_max``, ``spectral_radius``,
    ``pair_ratio``, ``observed_factor`` (each an :class:`Estimate` dict with its ``kind``),
    ``contractive`` (fraction of tokens with σ_max < 1), the solves' statistics and the collapse
    diagnostics of the fixed points. ``threshold`` is in the ``rel`` metric. Random choices come
    from ``seed``. The model's own mode and dtype are left unchanged. ``progress(done, 4, step)`` is
    called before each of the four :data:`STEPS`."""
    say = progress or (lambda done, total, step: None)
    _check(spectral, dtype, picard_iterations)
    ids = protocol.token_tensor(model, token_ids).reshape(-1)
    t0 = time.perf_counter()
    work = copy.deepcopy(model).to(DTYPES[dtype])
    gen = torch.Generator().manual_seed(seed)
    with eval_mode(work):
        say(0, len(STEPS), STEPS[0])
        picard = solve(
            work,
            ids,
            SolverConfig(
                metric="rel", threshold=threshold, max_iterations=picard_iterations,
                divergence_factor=None, record_trace=True,
            ),
        )  # fmt: skip
        factor = observed_factor(picard, metric="l2")
        say(1, len(STEPS), STEPS[1])
        fixed = solve(
            work,
            ids,
            SolverConfig(
                metric="rel", threshold=threshold, max_iterations=refine_iterations, method="anderson"
            ),
            init=picard.context,
        )
        z = fixed.context
        fn = model_map(work, ids)
        say(2, len(STEPS), STEPS[2])
        sig, rho = _spectra(fn, z, spectral, power_iterations, krylov_dim, gen)
        say(3, len(STEPS), STEPS[3])
        pr = pair_ratio(fn, z, pairs=pairs, radii=radii, ascent_steps=ascent_steps, generator=gen)
    return {
        "token_ids": ids.tolist(),
        "tokens": int(ids.numel()),
        "dtype": dtype,
        "sigma_max": sig.to_dict(),
        "spectral_radius": rho.to_dict(),
        "pair_ratio": pr.to_dict(),
        "observed_factor": factor.to_dict(),
        "contractive": sig.fraction_below(1.0),
        "pair_ratio_below_one": pr.fraction_below(1.0),
        "picard": {
            "iterations": picard.iterations.tolist(),
            "converged": int(picard.converged.sum()),
            "max_iterations": picard_iterations,
            "final_rel_residual": picard.residual["rel"].tolist(),
        },
        "fixed_point": {
            "converged": fixed.converged.tolist(),
            "rel_residual": fixed.residual["rel"].tolist(),
            "threshold": threshold,
            "anderson_evaluations": fixed.evaluations.tolist(),
        },
        "collapse": _collapse(z, ids),
        "seconds": time.perf_counter() - t0,
    }


def _check(spectral: str, dtype: str, picard_iterations: int) -> None:
    if spectral not in SPECTRAL:
        raise ValueError(f"spectral must be one of {', '.join(SPECTRAL)}; got {spectral!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if picard_iterations < 2:
        raise ValueError(f"picard_iterations must be >= 2 to fit a factor, got {picard_iterations}")


def _spectra(
    fn: Any, z: torch.Tensor, spectral: str, power_iterations: int, krylov_dim: int, gen: torch.Generator
) -> tuple[Estimate, Estimate]:
    """σ_max and ρ of the Jacobian at ``z``: exact when asked or small enough, else power/Arnoldi."""
    if spectral == "exact" or (spectral == "auto" and z.shape[-1] <= EXACT_MAX_DIM):
        ex = exact(fn, z)
        return ex["sigma_max"], ex["spectral_radius"]
    sig = sigma_max(fn, z, iterations=power_iterations, generator=gen)
    return sig, arnoldi(fn, z, krylov_dim=krylov_dim, generator=gen)


def _collapse(z: torch.Tensor, ids: torch.Tensor) -> dict[str, Any]:
    """The collapse diagnostics of the fixed points and the verdict on them."""
    collapse = diagnostics.collapse_report(z, ids)
    return {**collapse, "collapsed": diagnostics.is_collapsed(collapse)}


def estimates_table(report: dict[str, Any]) -> list[str]:
    """Readable lines: one row per token, then max and median rows, then the summary."""
    keys = ("sigma_max", "spectral_radius", "pair_ratio", "observed_factor")
    head = ["sigma_max", "rho", "pair_ratio", "obs_factor"]
    kinds = [report[k]["kind"] for k in keys]
    lines = [f"{'token':>8} " + " ".join(f"{h:>11}" for h in head) + f" {'at c*':>6}"]
    lines.append(f"{'':>8} " + " ".join(f"{k:>11}" for k in kinds))
    conv = report["fixed_point"]["converged"]
    for i, t in enumerate(report["token_ids"]):
        vals = " ".join(_fmt(report[k]["values"][i]) for k in keys)
        lines.append(f"{t:>8} {vals} {'yes' if conv[i] else 'NO':>6}")
    for stat in ("max", "median"):
        lines.append(f"{stat:>8} " + " ".join(_fmt(report[k][stat]) for k in keys))
    c = report["collapse"]
    lines.append(
        f"contractive (sigma_max < 1): {100 * report['contractive']:.1f}%   pair ratio < 1: "
        f"{100 * report['pair_ratio_below_one']:.1f}%   fixed points found: {sum(conv)}/{len(conv)}"
    )
    lines.append(
        f"fixed points: effective rank {c['effective_rank']:.2f}  max cosine {_fmt(c['max_cosine']).strip()}"
        f"  rms {c['context_rms']:.4f}  collapsed {c['collapsed']}   ({report['seconds']:.1f} s)"
    )
    return lines


def _fmt(v: float | None) -> str:
    return f"{'nan':>11}" if v is None or v != v else f"{v:>11.5f}"


__all__ = ["Estimate", "contraction_report", "estimates_table"]
