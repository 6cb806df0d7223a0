"""``newllm.testing.check_model``: the built-in models pass, each deliberately broken model
(tests/broken_models.py) is caught by the check named for it with a message naming tokens and
numbers, protocol violations and bad arguments raise ValueError, the baseline gate works."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from newllm import ModelConfig, SolverConfig, build_model
from newllm.runs.jsonio import dumps
from newllm.testing import CHECKS, check_model, make_baseline
from tests import broken_models as B

#: Untrained models are checked with warmup 10: from the zero context, iteration 1 of an untrained
#: Sequential model is a false convergence (see test_the_untrained_false_convergence_is_caught).
UNTRAINED = SolverConfig(warmup=10)


def tiny(arch: str, **kw):
    return build_model(
        ModelConfig(arch=arch, vocab_size=64, embed_dim=16, context_dim=16, hidden_dim=16, **kw)
    )


@pytest.mark.parametrize("arch", ["sequential", "layerwise"])
def test_the_builtin_architectures_pass_every_check(arch):
    model = tiny(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = check_model(model, solver=UNTRAINED)
    assert report.passed, "\n".join(report.table())
    assert [r.name for r in report.results] == list(CHECKS)
    status = {r.name: r.status for r in report.results}
    assert status["contraction"] == status["uniqueness"] == "skipped"  # no contraction claimed
    assert status["device_parity"] == ("passed" if torch.cuda.is_available() else "skipped")
    assert all(
        status[n] == "passed" for n in CHECKS if n not in ("contraction", "uniqueness", "device_parity")
    )
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    sig = report["contraction"].numbers["sigma_max"]
    assert len(sig) == 16 and report["contraction"].numbers["kind"] == "exact"


BROKEN = [
    # factory, the check named for the bug, what its message must say
    (
        B.batch_statistics,
        "batch_invariance",
        r"one step: token \d+ \(position \d+\).* differ from the whole batch \(worst token \d+ \(position \d+\): [\d.]+ > 1e-09\)",
    ),
    (
        B.eval_dropout,
        "deterministic",
        r"eval mode, repeated step from the initial context: token \d+ \(position \d+\).* differ by up to [\d.]+",
    ),
    (
        B.nan_tokens,
        "finite",
        r"embed: token 3 \(position 0\), token 33 \(position 10\) \(8/8 entries non-finite\)",
    ),
    (
        B.ignores_token,
        "collapse",
        r"collapsed: max cosine 1\.000000 \(token \d+ \(position \d+\) and token \d+ \(position \d+\)\) > 0\.999",
    ),
    (
        B.half_precision,
        "dtype_parity",
        r"one step: token .* differ, float32 vs float64 \(worst token \d+ \(position \d+\): [\d.e-]+ > 1e-05\)",
    ),
]


@pytest.mark.parametrize("factory, check, message", BROKEN, ids=[b[1] for b in BROKEN])
def test_each_broken_model_is_caught_by_the_check_named_for_it(factory, check, message):
    report = check_model(factory(), checks=[check])
    result = report[check]
    assert result.status == "failed" and not report.passed, result
    assert re.search(message, result.detail), result.detail
    healthy = check_model(B.healthy(), checks=[check])  # the same model without the bug passes
    assert healthy.passed, healthy[check].detail


def test_a_bistable_map_passes_contraction_locally_but_fails_uniqueness():
    """σ_max < 1 at every fixed point found from zero, yet other starts reach other fixed points."""
    report = check_model(B.bistable(), checks=["contraction", "uniqueness"], contractive=True)
    assert report["contraction"].status == "passed", report["contraction"].detail
    assert report["uniqueness"].status == "failed"
    assert re.search(
        r"random x10: token \d+ \(position \d+\).* landed [\d.]+ from the reference \(bound [\d.e-]+\)",
        report["uniqueness"].detail,
    ), report["uniqueness"].detail


def test_the_untrained_false_convergence_is_caught():
    """At warmup 0 an untrained tiny Sequential model 'converges' at iteration 1 from the zero context
    (a near-zero step) and jumps away at iteration 2: stable_convergence and collapse say so."""
    model = build_model(
        ModelConfig(arch="sequential", vocab_size=64, embed_dim=8, context_dim=8, hidden_dim=16)
    )
    report = check_model(model, checks=["convergence", "stable_convergence", "collapse"])
    assert (
        report["convergence"].status == "passed" and report["convergence"].numbers["mean_iterations"] == 1.0
    )
    detail = report["stable_convergence"].detail
    assert report["stable_convergence"].status == "failed" and detail.startswith("16/16 converged tokens"), (
        detail
    )
    assert re.search(
        r"token 3 \(position 0\): mse residual [\d.e-]+ at iteration 1, [\d.]+ at iteration 2", detail
    )
    assert report["collapse"].status == "failed" and "min context RMS" in report["collapse"].detail


class NoStep(nn.Module):
    vocab_size = 64

    def embed(self, ids):
        return torch.zeros(*ids.shape, 4)


class WrongStep(NoStep):
    def initial_context(self, shape):
        return torch.zeros(*shape, 4)

    def step(self, context):  # forgot the token
        return context


@pytest.mark.parametrize(
    "model, message",
    [
        (
            object(),
            r"object does not satisfy the CVFP model protocol .*: missing a torch.nn.Module.*embed\(token_ids\)",
        ),
        (
            NoStep(),
            r"NoStep does not satisfy .*missing step\(token_emb, context\); initial_context\(shape\)$",
        ),
        (
            WrongStep(),
            r"WrongStep.step\(embed\(token_ids\[:2\]\), initial_context\(\(2,\)\)\) raised TypeError",
        ),
    ],
)
def test_a_model_outside_the_protocol_is_refused_naming_what_is_missing(model, message):
    with pytest.raises(ValueError, match=message):
        check_model(model)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"checks": ["finite", "nope"]}, r"unknown check 'nope'; expected names from: finite, deterministic"),
        ({"checks": []}, r"unknown check '\(none given\)'"),
        ({"token_ids": []}, r"token ids are empty"),
        ({"token_ids": [1, 64]}, r"token id 64 at position 1 is out of range: expected 0 <= id < 64"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"solver": {"metric": "l2"}}, r"solver must be a SolverConfig, got dict"),
        (
            {"baseline": {"format": "x"}},
            r"baseline is not a 'newllm-matrix/1' file",
        ),
    ],
)
def test_bad_arguments_raise_value_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        check_model(B.healthy(), **kw)


def test_a_check_in_which_the_model_raises_fails_with_the_exception():
    class Float32Only(B.Wrapped):
        def step(self, token_emb, context, *, generator=None):
            if context.dtype != torch.float32:
                raise RuntimeError(f"expected float32 contexts, got {context.dtype}")
            return super().step(token_emb, context, generator=generator)

    report = check_model(Float32Only(), checks=["finite", "dtype_parity"])
    assert report["finite"].status == "passed"
    assert report["dtype_parity"].status == "failed"
    assert report["dtype_parity"].detail.startswith(
        "raised RuntimeError: expected float32 contexts, got torch.float64"
    )


def test_the_report_is_json_ready():
    report = check_model(B.healthy(), checks=["finite", "convergence", "device_parity"])
    out = json.loads(dumps(report.to_dict()))
    assert out["passed"] is True and out["failed"] == [] and out["token_ids"] == list(range(3, 49, 3))
    assert out["counts"]["passed"] + out["counts"]["skipped"] == 3
    assert out["solver"] == SolverConfig().to_dict() and out["model"]["context_dim"] == 8
    conv = next(c for c in out["checks"] if c["name"] == "convergence")
    assert set(conv) == {"name", "status", "detail", "numbers", "seconds"}
    assert conv["numbers"]["tokens"] == 16 and conv["numbers"]["converged"] == 16


def test_the_binomial_gate_against_a_baseline():
    solver = SolverConfig(max_iterations=30)
    healthy = check_model(B.healthy(), checks=["convergence"], solver=solver)
    base = make_baseline(healthy.settings, healthy["convergence"].numbers)
    same = check_model(B.healthy(), checks=["convergence"], baseline=base, solver=solver)
    assert same.passed and same["convergence"].numbers["baseline"]["findings"] == []
    # a model for which fewer tokens converge under the same settings: a significant drop
    worse = build_model(
        ModelConfig(arch="layerwise", vocab_size=64, embed_dim=8, context_dim=8, hidden_dim=16, init_std=1.0)
    )
    report = check_model(worse, checks=["convergence"], baseline=base, solver=solver)
    n = report["convergence"].numbers
    assert n["converged"] < 16 and report["convergence"].status == "failed"
    assert f"REGRESSION verify: converged 16/16 -> {n['converged']}/16 (P(X <= " in report["convergence"].detail
    assert "exact one-sided binomial test vs the baseline rate" in report["convergence"].detail
    with pytest.raises(ValueError, match=r"other solver settings: warmup 0 \(baseline\) vs 5"):
        check_model(
            B.healthy(),
            checks=["convergence"],
            baseline=base,
            solver=SolverConfig(max_iterations=30, warmup=5),
        )


def test_one_probe_token_skips_the_checks_that_need_two():
    report = check_model(B.healthy(), token_ids=[5], checks=["finite", "batch_invariance", "collapse"])
    assert [r.status for r in report.results] == ["passed", "skipped", "skipped"] and report.passed


def test_parametrize_with_checks_makes_one_test_per_model_and_check():
    from newllm.testing import parametrize_with_checks

    mark = parametrize_with_checks(
        [B.healthy(), ("nan", B.nan_tokens), B.healthy()], checks=["finite", "device_parity"]
    )
    assert mark.args[0] == "model, check"
    params = mark.args[1]
    assert [p.id for p in params] == [
        "CVFPModel-finite",
        "CVFPModel-device_parity",
        "nan-finite",
        "nan-device_parity",
        "CVFPModel-2-finite",
        "CVFPModel-2-device_parity",
    ]
    model, check = params[0].values
    assert check(model).status == "passed"
    model, check = params[2].values  # a factory: built on first use
    with pytest.raises(AssertionError, match=r"finite failed for nan: embed: token 3 \(position 0\)"):
        check(model)
    if not torch.cuda.is_available():
        model, check = params[1].values
        with pytest.raises(pytest.skip.Exception, match="device_parity: no CUDA device"):
            check(model)
    with pytest.raises(ValueError, match="parametrized with another model"):
        params[0].values[1](B.healthy())


def test_solve_mismatches_allow_only_rounding_at_the_threshold():
    """The comparison behind batch_invariance, dtype_parity and device_parity, on known rows
    ``z -> a_i z + b_i``: equal runs agree; another iteration count is reported unless both residuals
    sit within the band of the threshold; contexts apart at the same iteration are reported."""
    import dataclasses

    from newllm import iterate
    from newllm.testing import solve_mismatches

    a = torch.tensor([[0.5], [0.6], [0.7]], dtype=torch.float64)
    cfg = SolverConfig(metric="l2", threshold=1e-3, max_iterations=100, record_trace=True)

    def run(b):
        return iterate(
            lambda z, rows: (a if rows is None else a[rows]) * z + (b if rows is None else b[rows]),
            torch.zeros(3, 2, dtype=torch.float64),
            cfg,
        )

    ids = torch.tensor([7, 8, 9])
    b = torch.ones(3, 2, dtype=torch.float64)
    ref = run(b)
    assert solve_mismatches(ref, run(b.clone()), ids, ctx_bound=1e-12, band=1e-6) == []
    far = run(b * torch.tensor([[1.0], [1.0], [50.0]], dtype=torch.float64))  # token 9 needs more iterations
    lines = solve_mismatches(ref, far, ids, ctx_bound=1e-12, band=1e-6)
    assert (
        len(lines) == 1
        and lines[0].startswith("token 9 (position 2): a converged at iteration")
        and "l2 residuals at iteration" in lines[0]
    )
    # token 8 sits at 1 / (1 - 0.6) = 2.5: a shift of 1e-6 is a relative gap of 4e-7
    moved = dataclasses.replace(
        ref, context=ref.context + torch.tensor([[0.0], [1e-6], [0.0]], dtype=torch.float64)
    )
    assert solve_mismatches(ref, moved, ids, ctx_bound=1e-9, band=1e-6) == [
        f"token 8 (position 1): contexts differ by 4e-07 > 1e-09 (both at iteration {int(ref.iterations[1])})"
    ]
    # a flip at the threshold: token 7 stops one iteration later, both residuals within the band there
    k = int(ref.iterations[0])
    trace = {m: t.clone() for m, t in ref.trace.items()}
    trace["l2"][k - 1, 0] = cfg.threshold * (1 + 1e-9)
    flipped = dataclasses.replace(ref, iterations=ref.iterations + torch.tensor([1, 0, 0]), trace=trace)
    near = dataclasses.replace(ref, trace={m: t.clone() for m, t in trace.items()})
    near.trace["l2"][k - 1, 0] = cfg.threshold * (1 - 1e-9)
    assert solve_mismatches(near, flipped, ids, ctx_bound=1e-9, band=1e-6) == []
    assert len(solve_mismatches(near, flipped, ids, ctx_bound=1e-9, band=1e-12)) == 1


def test_the_solver_and_the_contraction_toolkit_accept_any_protocol_model():
    """A model that is not a CVFPModel (the GRU example: no config, no token_embedding) solves, with
    and without a start, and gets a contraction report; a non-model is refused naming the protocol."""
    from examples.gru_model import GRUContextModel
    from newllm import contraction, solve

    model = GRUContextModel(vocab_size=32, embed_dim=6, context_dim=5, seed=1)
    res = solve(model, [1, 2, 3], SolverConfig(metric="l2", threshold=1e-6))
    assert bool(res.converged.all()) and res.context.shape == (3, 5)
    again = solve(model, [1, 2, 3], SolverConfig(metric="l2", threshold=1e-6), init=torch.ones(5))
    torch.testing.assert_close(again.context, res.context, atol=1e-5, rtol=0)
    rep = contraction.contraction_report(model, [1, 2], picard_iterations=50, ascent_steps=0, pairs=2)
    assert rep["sigma_max"]["kind"] == "exact" and rep["tokens"] == 2 and max(rep["sigma_max"]["values"]) < 1
    with pytest.raises(ValueError, match=r"token id 32 at position 0 is out of range: expected 0 <= id < 32"):
        solve(model, [32])
    with pytest.raises(ValueError, match="int does not satisfy the CVFP model protocol"):
        solve(3, [1])
