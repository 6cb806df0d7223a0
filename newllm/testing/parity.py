"""Checks that a token's result depends on nothing but the token and its start: not on its batchmates
or their order (``batch_invariance``), not on float32 vs float64 beyond rounding (``dtype_parity``),
not on CPU vs CUDA (``device_parity``). Bounds are ``max |a - b| / max(1, |b|)`` per entry.

Measured on the built-in models (dims 8-256, init_std 0.02-0.3, properties family 7): one step,
float64 batch vs sub-batch <= 3e-13; float32 vs float64 <= 1.6e-6 (dims 256: 1.5e-6); solved
contexts float32 vs float64 <= 2.6e-5. A map that amplifies rounding along its transient (Lipschitz
well above 1) can exceed the solve bounds without a bug; the one-step numbers then stay small.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch

from ..result import FixedPointResult
from ..solve import solve
from .compare import entry_gap, solve_mismatches, take
from .probe import Model, Probe, apply, labels
from .report import CheckResult

#: batch_invariance (float64): one step, and contexts of tokens converged together.
BATCH_STEP_BOUND = 1e-9
BATCH_CONTEXT_BOUND = 1e-9
#: batch_invariance: residuals within this relative band of the threshold may flip a decision.
BATCH_BAND = 1e-6
#: dtype_parity / device_parity (float32 against float64 or CUDA): one step, solved contexts, band.
PARITY_STEP_BOUND = 1e-5
PARITY_CONTEXT_BOUND = 1e-3
PARITY_BAND = 1e-2


def subsets(probe: Probe) -> dict[str, torch.Tensor]:
    """Index sets of the probe tokens: a permutation (``seed``), both halves, the first and last token alone."""
    n = probe.n
    h = (n + 1) // 2
    return {
        "permuted": torch.randperm(n, generator=probe.generator(4)),
        "first half": torch.arange(h),
        "second half, reversed": torch.arange(n - 1, h - 1, -1) if n > h else torch.arange(n - 1, n),
        "first token alone": torch.tensor([0]),
        "last token alone": torch.tensor([n - 1]),
    }


def batch_step_gap(
    model: Model, ids: torch.Tensor, contexts: Iterable[torch.Tensor], index_sets: Iterable[torch.Tensor]
) -> torch.Tensor:
    """Per token ``[N]``: the largest :func:`~newllm.testing.compare.entry_gap` between one eval-mode step
    of a sub-batch ``ids[idx]`` and the same tokens' step in the whole batch, over ``contexts`` (each
    ``[N, C]``) and ``index_sets``."""
    gap = torch.zeros(ids.numel(), dtype=torch.float64)
    sets = list(index_sets)
    for c in contexts:
        full = apply(model, ids, c)
        for idx in sets:
            gap[idx] = torch.fmax(gap[idx], entry_gap(apply(model, ids[idx], c[idx]), full[idx]))
    return gap


def _traced_solve(model: Model, ids: torch.Tensor, probe: Probe, *, reset: bool = False) -> FixedPointResult:
    """The stated solve with its trace (``reset``: every token from the initial context, even in carry mode)."""
    mode = "reset" if reset else probe.solver.context_mode
    return solve(model, ids, probe.with_solver(record_trace=True, context_mode=mode))


def batch_invariance(probe: Probe) -> CheckResult:
    """In float64 (so rounding is far below the bounds): one step from the initial and random contexts,
    and the stated solve, of every sub-batch in :func:`subsets` equal the whole batch's for the same
    tokens (one step within :data:`BATCH_STEP_BOUND`; solves: :mod:`newllm.testing.compare` with
    :data:`BATCH_CONTEXT_BOUND` and :data:`BATCH_BAND`)."""
    m, ids = probe.model64, probe.token_ids
    if probe.n < 2:
        return CheckResult("batch_invariance", "skipped", "one probe token: no batchmates to compare with")
    step_gap = batch_step_gap(m, ids, probe.start_points().values(), subsets(probe).values())
    problems = _step_problems(ids, step_gap, BATCH_STEP_BOUND, "from the whole batch")
    whole, lines = _traced_solve(m, ids, probe, reset=True), []
    for name, idx in subsets(probe).items():
        lines += solve_mismatches(
            take(whole, idx),
            _traced_solve(m, ids[idx], probe, reset=True),
            ids[idx],
            ctx_bound=BATCH_CONTEXT_BOUND,
            band=BATCH_BAND,
            labels_ab=("whole batch", name),
        )
    problems += _first(lines, "solve")
    ok = not problems
    detail = (
        (
            f"one step and the stated solve agree across {len(subsets(probe))} sub-batches "
            f"(float64; largest one-step gap {float(step_gap.max()):.2g})"
        )
        if ok
        else "; ".join(problems)
    )
    return CheckResult.judged(
        "batch_invariance",
        ok,
        detail,
        max_step_gap=float(step_gap.max()),
        step_gap=step_gap.tolist(),
        subsets=list(subsets(probe)),
    )


def _step_problems(ids: torch.Tensor, step_gap: torch.Tensor, bound: float, versus: str) -> list[str]:
    """One line naming the tokens whose one-step gap exceeds ``bound`` (empty when none does)."""
    bad = (step_gap > bound).nonzero().flatten()
    if not bad.numel():
        return []
    worst = int(step_gap.argmax())
    sep = "" if versus.startswith(",") else " "
    return [
        f"one step: {labels(ids, bad)} differ{sep}{versus} (worst {labels(ids, [worst])}: "
        f"{float(step_gap[worst]):.3g} > {bound:.0e})"
    ]


def _first(lines: list[str], what: str, limit: int = 3) -> list[str]:
    """The first ``limit`` lines prefixed with ``what``, then how many more there were."""
    more = [f"{what}: {len(lines) - limit} more mismatches"] if len(lines) > limit else []
    return [f"{what}: {line}" for line in lines[:limit]] + more


def _copy(model: Model, device: str | torch.device, dtype: torch.dtype) -> Model:
    return copy.deepcopy(model).to(device=device, dtype=dtype)


def compare_copies(probe: Probe, name: str, a: Model, b: Model, labels_ab: tuple[str, str]) -> CheckResult:
    """Model copies ``a`` and ``b`` (``b`` the reference) agree: one step from the probe's start
    points within :data:`PARITY_STEP_BOUND`, the stated solves per :mod:`newllm.testing.compare`
    (contexts :data:`PARITY_CONTEXT_BOUND`, band :data:`PARITY_BAND`)."""
    ids, (la, lb) = probe.token_ids, labels_ab
    step_gap = torch.zeros(probe.n, dtype=torch.float64)
    for c in probe.start_points().values():
        g = entry_gap(apply(a, ids, c), apply(b, ids, c))
        step_gap = torch.fmax(step_gap, g)
    problems = _step_problems(ids, step_gap, PARITY_STEP_BOUND, f", {la} vs {lb}")
    ra, rb = _traced_solve(a, ids, probe), _traced_solve(b, ids, probe)
    lines = solve_mismatches(
        ra, rb, ids, ctx_bound=PARITY_CONTEXT_BOUND, band=PARITY_BAND, labels_ab=labels_ab
    )
    problems += _first(lines, "solve")
    ctx = entry_gap(ra.context, rb.context)
    ok = not problems
    detail = (
        (
            f"{la} vs {lb}: one step within {float(step_gap.max()):.2g}, solves agree (contexts within "
            f"{float(ctx.max()):.2g})"
        )
        if ok
        else "; ".join(problems)
    )
    return CheckResult.judged(
        name,
        ok,
        detail,
        max_step_gap=float(step_gap.max()),
        step_gap=step_gap.tolist(),
        max_context_gap=float(ctx.max()),
        solve_mismatches=len(lines),
    )


def dtype_parity(probe: Probe) -> CheckResult:
    """float32 vs float64 copies of the model on its device: :func:`compare_copies`."""
    dev = probe.model.initial_context(()).device
    return compare_copies(
        probe, "dtype_parity", _copy(probe.model, dev, torch.float32), probe.model64, ("float32", "float64")
    )


def device_parity(probe: Probe) -> CheckResult:
    """float32 copies on the CPU vs CUDA: :func:`compare_copies`; skipped without a CUDA device."""
    if not torch.cuda.is_available():
        return CheckResult("device_parity", "skipped", "no CUDA device on this machine")
    cpu = _copy(probe.model, "cpu", torch.float32)
    return compare_copies(
        probe, "device_parity", _copy(probe.model, "cuda", torch.float32), cpu, ("cuda", "cpu")
    )
