"""Family 1: metric consistency, and every convergence decision going through ``newllm.metrics``.

Arithmetic: for finite ``(new, old)`` of any shape ``[*lead, D]`` in float32/float64 with entries 0 or
of magnitude in ``strategies.MAGNITUDE`` (bounded so that ``D (2x)^2`` cannot overflow):
``l2^2 = D mse`` and ``rms = sqrt(mse)`` within ``2 (D + 4) eps`` relative plus ``2 D tiny`` absolute
(squares in the subnormal range lose their relative precision). Decisions agree across metrics at
converted thresholds except for rows whose residual lies within ``16 (D + 4) eps`` (relative) of its
threshold, or whose ``l2^2`` is below ``1e6 D tiny`` (squares near underflow): both are skipped.

Call path: spies replace every registry entry and ``metrics.below`` at run time (``properties.spies``),
then the solver, Phase 1 (both loops), the Phase 1 cache and the ``newllm solve`` report must have
decided every token through ``metrics.below`` on the output of the configured registry metric.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from newllm import SolverConfig, metrics, solve
from newllm.metrics import METRICS, convert_threshold
from newllm.phase1.cache import build_cache
from properties import strategies as S
from properties.spies import MetricSpy, spied_phase1


def _eps_tiny(dtype: torch.dtype) -> tuple[float, float]:
    fi = torch.finfo(dtype)
    return fi.eps, fi.tiny


@given(pair=S.residual_pairs())
def test_l2_squared_is_d_times_mse_and_rms_is_sqrt_mse(pair):
    new, old = pair
    d = new.shape[-1]
    eps, tiny = _eps_tiny(new.dtype)
    r = metrics.all_residuals(new, old)
    assert set(r) == set(METRICS)
    for v in r.values():
        assert v.shape == new.shape[:-1] and v.dtype == new.dtype
    mse, l2, rms = r["mse"].double(), r["l2"].double(), r["rms"].double()
    assert bool(torch.isfinite(mse).all() and torch.isfinite(l2).all())
    gap = (l2**2 - d * mse).abs()
    allowed = 2 * (d + 4) * eps * d * mse + 2 * d * tiny
    assert bool((gap <= allowed).all()), (gap.max(), allowed.min())
    gap = (rms - mse.sqrt()).abs()
    assert bool((gap <= 4 * eps * mse.sqrt() + math.sqrt(tiny)).all()), gap.max()


@given(
    value=S.log_uniform(1e-30, 1e30),
    src=S.metric_names,
    dst=S.metric_names,
    via=S.metric_names,
    dim=st.integers(1, 4096),
    ref=S.log_uniform(1e-3, 1e3),
)
def test_threshold_conversions_round_trip_and_compose(value, src, dst, via, dim, ref):
    there = convert_threshold(value, src, dst, dim, reference_norm=ref)
    assert math.isfinite(there) and there > 0
    back = convert_threshold(there, dst, src, dim, reference_norm=ref)
    assert back == pytest.approx(value, rel=1e-12)
    two_hops = convert_threshold(
        convert_threshold(value, src, via, dim, reference_norm=ref), via, dst, dim, reference_norm=ref
    )
    assert two_hops == pytest.approx(there, rel=1e-12)


@given(pair=S.residual_pairs(), a=S.metric_names, b=S.metric_names, data=st.data())
def test_decision_at_a_threshold_equals_decision_at_the_converted_threshold(pair, a, b, data):
    new, old = (t.reshape(-1, t.shape[-1]) for t in pair)
    d = new.shape[-1]
    eps, tiny = _eps_tiny(new.dtype)
    r = metrics.all_residuals(new, old)
    res_a, res_b = r[a].double(), r[b].double()
    # a threshold in metric a placed among the rows' residuals, so decisions go both ways
    j = data.draw(st.integers(0, new.shape[0] - 1))
    thr_a = float(res_a[j]) * math.exp(data.draw(st.floats(-2.0, 2.0)))
    if not (math.isfinite(thr_a) and thr_a > 0):
        thr_a = data.draw(S.log_uniform(1e-20, 1e20))
    new_norm = torch.linalg.vector_norm(new.double(), dim=-1)
    band = 16 * (d + 4) * eps
    checked = 0
    for i in range(new.shape[0]):
        ref = float(new_norm[i])
        if "rel" in (a, b) and not ref > 1e-27:  # rel floors ||new|| at 1e-30
            continue
        if float(r["l2"][i].double() ** 2) < 1e6 * d * tiny:
            continue
        thr_b = convert_threshold(thr_a, a, b, d, reference_norm=ref)
        near = abs(float(res_a[i]) / thr_a - 1) <= band or abs(float(res_b[i]) / thr_b - 1) <= band
        if near:
            continue
        da = bool(metrics.below(r[a][i : i + 1], thr_a))
        db = bool(metrics.below(r[b][i : i + 1], thr_b))
        assert da == db, (i, a, float(res_a[i]), thr_a, b, float(res_b[i]), thr_b)
        checked += 1
    assume(checked > 0)


# ---------------------------------------------------------------- the call path, observed at run time


def _check_decisions(spy: MetricSpy, metric: str, threshold: float) -> None:
    assert spy.decisions, "no convergence decision went through newllm.metrics.below"
    for d in spy.decisions:
        assert d.threshold == threshold, (d.threshold, threshold)
        assert metric in d.sources, (
            f"a decision was taken on a residual that is not the output of the registry metric {metric!r} "
            f"(it matches {sorted(d.sources) or 'no registry call'})"
        )


@given(case=S.model_cases(max_tokens=8), cfg=S.solver_configs(), carry=st.booleans(), anderson=st.booleans())
def test_the_solver_decides_through_the_registry(case, cfg, carry, anderson):
    model = case.build()
    cfg = SolverConfig(
        **{
            **cfg.to_dict(),
            "context_mode": "carry" if carry else "reset",
            "method": "anderson" if anderson else "picard",
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        spy = MetricSpy().install(mp)
        res = solve(model, case.ids, cfg)
    decided = int((res.evaluations - cfg.warmup).clamp_min(0).sum())
    if decided == 0:
        assert not spy.decisions and not bool(res.converged.any())
        return
    _check_decisions(spy, cfg.metric, cfg.threshold)
    assert sum(d.verdict.numel() for d in spy.decisions) == decided
    assert spy.true_verdicts == int(res.converged.sum())
    names = {c.name for c in spy.calls}
    assert cfg.metric in names


@given(
    case=S.model_cases(max_tokens=5, max_dim=8, dropout=st.sampled_from([0.0, 0.1])),
    loop=st.sampled_from(["spec", "batched"]),
    threshold=S.log_uniform(1e-4, 1.0),
    warmup=st.integers(0, 3),
    epochs=st.integers(1, 2),
    split=st.integers(1, 4),
)
def test_phase1_decides_through_the_registry_mse(case, loop, threshold, warmup, epochs, split):
    ids = case.ids.tolist()
    samples = [ids[:split], ids[split:]] if len(ids) > split else [ids]
    settings = dict(epochs=epochs, loop=loop, threshold=threshold, warmup=warmup, learning_rate=1e-3, batch_samples=2)
    spy, run, _ = spied_phase1(case, samples, **settings)
    _check_decisions(spy, "mse", threshold)
    converged = sum(r.converged for r in run.records)
    assert spy.true_verdicts == converged
    for r in run.records:
        assert r.converged == (r.iterations > warmup and r.final_loss < threshold), r
    for e in run.epochs:
        recs = [r for r in run.records if r.epoch == e.epoch]
        assert e.rate == sum(r.converged for r in recs) / len(recs)


@given(case=S.model_cases(max_tokens=6), metric=S.metric_names, threshold=S.log_uniform(1e-6, 1.0))
def test_the_phase1_cache_decides_through_the_registry(case, metric, threshold):
    model = case.build()
    cfg = SolverConfig(metric=metric, threshold=threshold, max_iterations=20)
    with pytest.MonkeyPatch.context() as mp:
        spy = MetricSpy().install(mp)
        cache = build_cache(model, [case.ids.tolist()], cfg, checkpoint="t")
    _check_decisions(spy, metric, threshold)
    assert spy.true_verdicts == int(cache.converged.sum())


@given(
    arch=st.sampled_from(["sequential", "layerwise"]),
    dim=st.integers(2, 12),
    tokens=st.integers(1, 6),
    metric=S.metric_names,
    threshold=S.log_uniform(1e-6, 1.0),
    warmup=st.integers(0, 3),
    seed=st.integers(0, 1000),
)
def test_the_solve_report_decides_through_the_registry(arch, dim, tokens, metric, threshold, warmup, seed):
    from newllm.cli.main import main

    argv = ["solve", "--arch", arch, "--dim", str(dim), "--vocab-size", "64", "--tokens", str(tokens)]
    argv += ["--metric", metric, "--threshold", repr(threshold), "--warmup", str(warmup)]
    argv += ["--max-iterations", str(warmup + 10), "--seed", str(seed), "--json"]
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(buf):
        spy = MetricSpy().install(mp)
        assert main(argv) == 0
    out = json.loads(buf.getvalue())
    assert out["metric"] == metric and out["threshold"] == threshold
    if spy.decisions:
        _check_decisions(spy, metric, threshold)
    assert spy.true_verdicts == out["converged"]
    assert out["rate"] == out["converged"] / out["tokens"]
