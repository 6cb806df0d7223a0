"""Checks on single applications of the protocol's methods and on repeated runs: ``finite``,
``deterministic``, ``shape_and_broadcast``."""

from __future__ import annotations

import torch

from .. import protocol
from ..contraction import eval_mode
from ..solve import solve
from ..stop import Status
from .compare import entry_gap
from .probe import Probe, apply, labels
from .report import CheckResult

#: ``shape_and_broadcast``: reshaped or broadcast inputs must give the flat result within this
#: (``max |a - b| / max(1, |b|)`` in the model's own dtype: float32 kernels over other row counts
#: may differ by a few ulps; a broadcasting bug differs by O(1)).
SHAPE_BOUND = 1e-5


def _nonfinite_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """Non-finite entries per token of ``[N, ...]`` (CPU ``[N]``)."""
    return (~torch.isfinite(x.detach().reshape(n, -1))).sum(1).cpu()


def finite(probe: Probe) -> CheckResult:
    """No NaN/inf: in ``embed`` of every probe token, in one eval-mode step from the initial and from
    random contexts, and in every iterate of the stated solve (no token ends ``nonfinite``)."""
    ids, counts, where = probe.token_ids, {}, []
    with eval_mode(probe.model), torch.no_grad():
        outputs = {"embed": probe.model.embed(ids)}
    for label, c in probe.start_points().items():
        outputs[f"one step from {label}"] = apply(probe.model, ids, c)
    for what, x in outputs.items():
        rows = _nonfinite_rows(x, probe.n)
        counts[what] = int((rows > 0).sum())
        if counts[what]:
            pos = rows.nonzero().flatten()
            where.append(
                f"{what}: {labels(ids, pos)} ({int(rows[pos[0]])}/{x[0].numel()} entries non-finite)"
            )
    res = probe.solved
    nf = (res.status == Status.NONFINITE).nonzero().flatten().cpu()
    counts["solve"] = int(nf.numel())
    if nf.numel():
        where.append(f"solve: {labels(ids, nf)} non-finite (first at iteration {int(res.iterations[nf[0]])})")
    ok = not where
    detail = (
        f"{probe.n} tokens finite in embed, one step from 2 start sets and every solver iterate"
        if ok
        else "; ".join(where)
    )
    return CheckResult.judged("finite", ok, detail, tokens=probe.n, nonfinite_tokens=counts)


def _differ(
    problems: list[str], gaps: dict, what: str, ids: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> None:
    """Record the largest gap of ``b`` from ``a`` under ``what``; a problem line when not bitwise equal."""
    g = entry_gap(b, a)
    gaps[what] = float(g.max())
    if bool((g > 0).any()):
        problems.append(
            f"{what}: {labels(ids, (g > 0).nonzero().flatten())} differ by up to {gaps[what]:.3g}"
        )


def _eval_repeats(probe: Probe, problems: list[str], gaps: dict) -> None:
    m, ids = probe.model, probe.token_ids
    with eval_mode(m), torch.no_grad(), torch.random.fork_rng():
        e, like = m.embed(ids), m.initial_context(())
        for label, c in probe.start_points().items():
            c = c.to(like.device, like.dtype)
            torch.manual_seed(probe.seed)
            first = m.step(e, c)
            torch.manual_seed(probe.seed + 1)
            _differ(problems, gaps, f"eval mode, repeated step from {label}", ids, first, m.step(e, c))
            if protocol.accepts_generator(m):
                other = m.step(e, c, generator=probe.generator(7))
                _differ(problems, gaps, f"eval mode, another generator from {label}", ids, first, other)


def _train_masks(probe: Probe, problems: list[str], gaps: dict) -> None:
    m, ids = probe.model, probe.token_ids
    was = m.training
    m.train()
    try:
        with torch.no_grad():
            e, c = m.embed(ids), m.initial_context((probe.n,))
            a, b = (m.step(e, c, generator=probe.generator(8)) for _ in range(2))
    finally:
        m.train(was)
    _differ(problems, gaps, "train mode, same generator state (dropout masks)", ids, a, b)


def deterministic(probe: Probe) -> CheckResult:
    """Eval mode: the same inputs give bitwise the same outputs, whatever the global RNG state and the
    ``generator`` passed; two stated solves agree bitwise. Train mode (when ``step`` takes a
    ``generator``): the same generator state gives the same dropout masks."""
    ids = probe.token_ids
    problems: list[str] = []
    gaps: dict[str, float] = {}
    gen = protocol.accepts_generator(probe.model)
    _eval_repeats(probe, problems, gaps)
    if gen:
        _train_masks(probe, problems, gaps)
    with torch.random.fork_rng():
        torch.manual_seed(probe.seed + 2)
        again = solve(probe.model, ids, probe.with_solver(record_trace=True))
    first = probe.solved
    same = (first.iterations == again.iterations) & (first.status == again.status)
    same = same.cpu() & (entry_gap(again.context, first.context) == 0)
    gaps["two stated solves"] = float(entry_gap(again.context, first.context).max())
    if not bool(same.all()):
        pos = (~same).nonzero().flatten()
        problems.append(
            f"two stated solves: {labels(ids, pos)} differ (iterations {first.iterations[pos].tolist()} vs "
            f"{again.iterations[pos].tolist()}, contexts by up to {gaps['two stated solves']:.3g})"
        )
    ok = not problems
    what = "repeated eval-mode steps (global RNG reseeded between)"
    what += ", other generators, train-mode steps from one generator state" if gen else ""
    detail = f"bitwise equal: {what}, two stated solves" if ok else "; ".join(problems)
    return CheckResult.judged("deterministic", ok, detail, max_gap=gaps, generator_keyword=gen)


def _shape_cases(probe: Probe) -> list[tuple[str, tuple[int, ...], torch.Tensor, torch.Tensor]]:
    """``(what, expected shape, output, reference)`` for every shape rule of the protocol."""
    m, ids, n = probe.model, probe.token_ids, probe.n
    half = n // 2
    with eval_mode(m), torch.no_grad():
        e, c = m.embed(ids), m.initial_context((n,))
        e_dim, c_dim = e.shape[-1], c.shape[-1]
        noise = probe.start_points()["random contexts"].to(c.device, c.dtype)
        flat = m.step(e, noise)
        grid = ids[: 2 * half].reshape(2, half)
        return [
            ("embed(ids [N])", (n, e_dim), e, e),
            ("embed(ids [2, N/2])", (2, half, e_dim), m.embed(grid), e[: 2 * half].reshape(2, half, -1)),
            ("embed(id [])", (e_dim,), m.embed(ids[0]), e[0]),
            ("initial_context(())", (c_dim,), m.initial_context(()), c[0]),
            (
                "initial_context((2, 3))",
                (2, 3, c_dim),
                m.initial_context((2, 3)),
                c[:1].expand(6, -1).reshape(2, 3, -1),
            ),
            ("step(e [N, E], c [N, C])", (n, c_dim), flat, flat),
            (
                "step on leading dims [2, N/2]",
                (2, half, c_dim),
                m.step(e[: 2 * half].reshape(2, half, -1), noise[: 2 * half].reshape(2, half, -1)),
                flat[: 2 * half].reshape(2, half, -1),
            ),
            (
                "step(e [1, E], c [N, C]) broadcasts",
                (n, c_dim),
                m.step(e[:1], noise),
                m.step(e[:1].expand(n, -1), noise),
            ),
            (
                "step(e [N, E], c [1, C]) broadcasts",
                (n, c_dim),
                m.step(e, noise[:1]),
                m.step(e, noise[:1].expand(n, -1)),
            ),
            (
                "step(e [N, 1, E], c [N, 3, C]) broadcasts",
                (n, 3, c_dim),
                m.step(e.unsqueeze(1), noise.unsqueeze(1).expand(n, 3, -1)),
                flat.unsqueeze(1).expand(n, 3, -1),
            ),
        ]


def _inputs_untouched(probe: Probe) -> str | None:
    m = probe.model
    with eval_mode(m), torch.no_grad():
        e, c = m.embed(probe.token_ids), probe.start_points()["random contexts"]
        c = c.to(m.initial_context(()).device, m.initial_context(()).dtype)
        e0, c0 = e.clone(), c.clone()
        out = m.step(e, c)
    if not (torch.equal(e, e0) and torch.equal(c, c0)):
        return "step modified its inputs in place (the solver keeps them)"
    if out.dtype != c.dtype or out.device != c.device:
        return f"step returned {out.dtype} on {out.device} for contexts {c.dtype} on {c.device}"
    return None


def shape_and_broadcast(probe: Probe) -> CheckResult:
    """The protocol's shapes: ``embed [...] -> [..., E]``, ``initial_context(shape) -> [*shape, C]``,
    ``step`` keeps leading dims, broadcasts ``[1, .]`` and ``[N, 1, .]`` against ``[N, P, .]`` (the
    contraction toolkit relies on it) with the same values as the explicit shapes (within
    :data:`SHAPE_BOUND`), returns the contexts' dtype/device and leaves its inputs unchanged."""
    problems, gaps = [], {}
    for what, shape, out, ref in _shape_cases(probe):
        if tuple(out.shape) != shape:
            problems.append(f"{what} has shape {tuple(out.shape)}, expected {shape}")
            continue
        g = entry_gap(out.reshape(1, -1), ref.reshape(1, -1))
        gaps[what] = float(g.max())
        if not float(g.max()) <= SHAPE_BOUND:
            problems.append(
                f"{what} differs from the explicit shape by {float(g.max()):.3g} > {SHAPE_BOUND:.0e}"
            )
    other = _inputs_untouched(probe)
    if other:
        problems.append(other)
    ok = not problems
    detail = (
        f"{len(gaps)} shape rules hold (largest gap {max(gaps.values(), default=0.0):.2g})"
        if ok
        else "; ".join(problems)
    )
    return CheckResult.judged("shape_and_broadcast", ok, detail, max_gap=gaps)
