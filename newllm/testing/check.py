"""``check_model``: every named check against any model satisfying :mod:`newllm.protocol`."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import SolverConfig
from . import gate
from .collapse import collapse
from .convergence import convergence, metric_consistency, stable_convergence
from .fixedpoint import contraction, uniqueness
from .numeric import deterministic, finite, shape_and_broadcast
from .parity import batch_invariance, device_parity, dtype_parity
from .probe import Model, Probe
from .report import CheckReport, CheckResult

Check = Callable[[Probe], CheckResult]

#: The one registry of checks, in run order: name -> ``check(probe) -> CheckResult``.
CHECKS: dict[str, Check] = {
    "finite": finite,
    "deterministic": deterministic,
    "shape_and_broadcast": shape_and_broadcast,
    "batch_invariance": batch_invariance,
    "dtype_parity": dtype_parity,
    "device_parity": device_parity,
    "metric_consistency": metric_consistency,
    "convergence": convergence,
    "stable_convergence": stable_convergence,
    "contraction": contraction,
    "uniqueness": uniqueness,
    "collapse": collapse,
}


def check_names(checks: Sequence[str] | None) -> list[str]:
    """The registry names to run, in registry order (all when None); ValueError naming an unknown one."""
    if checks is None:
        return list(CHECKS)
    if isinstance(checks, str) or not all(isinstance(c, str) for c in checks):
        raise ValueError(f"checks must be a list of check names, got {checks!r}")
    unknown = [c for c in checks if c not in CHECKS]
    if unknown or not checks:
        raise ValueError(
            f"unknown check {unknown[0] if unknown else '(none given)'!r}; expected names from: "
            f"{', '.join(CHECKS)}"
        )
    return [c for c in CHECKS if c in checks]


def run_check(name: str, probe: Probe) -> CheckResult:
    """One check; an exception raised by the model inside it is a failure naming the exception."""
    t0 = time.perf_counter()
    try:
        result = CHECKS[name](probe)
    except Exception as exc:  # noqa: BLE001 - the model under test raised: that is the check's finding
        where = traceback.extract_tb(exc.__traceback__)[-1]
        result = CheckResult(
            name,
            "failed",
            f"raised {type(exc).__name__}: {' '.join(str(exc).split())} "
            f"(at {Path(where.filename).name}:{where.lineno})",
        )
    result.seconds = time.perf_counter() - t0
    return result


def check_model(
    model: Model,
    *,
    token_ids: torch.Tensor | Sequence[int] | None = None,
    checks: Sequence[str] | None = None,
    baseline: str | Path | dict[str, Any] | None = None,
    seed: int = 0,
    solver: SolverConfig | None = None,
    contractive: bool = False,
) -> CheckReport:
    """Run the named checks (all of :data:`CHECKS` by default) on ``model`` and return the report.

    ``token_ids``: the probe tokens ``[N]`` (>= 2 distinct; default 16 spread over ``model.vocab_size``).
    ``solver``: the stated solver settings (default ``SolverConfig()``). ``baseline``: a baseline file
    or dict (:mod:`newllm.testing.gate`) for the ``convergence`` gate; it must match the token ids and
    solver settings. ``contractive``: the caller claims the update contracts at the fixed points
    (``contraction`` and ``uniqueness`` are judged only then). Random choices come from ``seed``.

    Never raises for a failed check; raises ValueError for a model that does not satisfy the protocol
    (naming what it lacks) or for bad arguments. The model's weights and mode are left unchanged.
    """
    names = check_names(checks)
    probe = Probe.of(model, token_ids=token_ids, solver=solver, seed=seed, contractive=contractive)
    if baseline is not None:
        probe.baseline = gate.load_baseline(baseline)
        gate.match(probe.baseline, probe.token_ids.tolist(), probe.solver.to_dict())
    return CheckReport([run_check(name, probe) for name in names], settings=probe.describe())
