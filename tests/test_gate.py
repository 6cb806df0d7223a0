"""The one gate (``python -m newllm.tools.gate``) and the one baseline format (newllm.matrix.baseline):
the committed baselines are complete and pass against themselves; doctored results fail, naming the
configuration and the numbers; bad files exit 2 with one ``error:`` line."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.stats import binom

from newllm.matrix import baseline as B
from newllm.matrix import gate
from newllm.matrix import regression as R
from newllm.tools import gate as gate_cli

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "baselines" / "cpu.json"
CONVERGENCE = ROOT / "properties" / "baselines" / "convergence_cpu.json"
DAMPED = "cpu/layerwise/trained/mse/picard/512"


@pytest.fixture(scope="module")
def bench() -> dict:
    return B.read(BENCH)


def as_benchmark_json(doc: dict) -> dict:
    """A pytest-benchmark-shaped JSON holding ``doc``'s configurations, one benchmark each."""
    benches = [
        {
            "fullname": f"bench/x.py::test[{n}]",
            "extra_info": {"configurations": [{"name": n, **copy.deepcopy(e)}]},
        }
        for n, e in doc["configurations"].items()
    ]
    return {"benchmarks": benches, "matrix": doc["settings"], "datetime": "2026-01-01T00:00:00"}


def run(tmp_path, capsys, result: dict, *extra: str, baseline: Path = BENCH) -> tuple[int, str, str]:
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result))
    code = gate_cli.main([str(path), "--baseline", str(baseline), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_committed_baselines_are_complete_and_made_under_the_matrix_settings(bench):
    from bench.test_iterations import CASES
    from properties import convergence as C

    want = {R.name("cpu", a, s, r, m, n) for a, s, r, m, n in CASES}
    want |= {f"cpu/phase1/{a}/{loop}" for a in ("layerwise", "sequential") for loop in ("batched", "spec")}
    assert set(bench["configurations"]) == want
    conv = B.read(CONVERGENCE)
    assert set(conv["configurations"]) == {
        R.name("cpu", a, s, r, C.METHOD, n) for a, s, r in C.CASES for n in C.COUNTS
    }
    assert bench["settings"] == conv["settings"] == R.settings()


@pytest.mark.parametrize("shape", ["document", "benchmark"])
def test_unchanged_result_passes(tmp_path, capsys, bench, shape):
    result = bench if shape == "document" else as_benchmark_json(bench)
    code, out, err = run(tmp_path, capsys, result)
    assert code == 0, err
    assert f"OK: {len(bench['configurations'])} configurations" in out and "alpha 0.01" in out


def test_damping_regression_fails_naming_the_configuration_and_numbers(tmp_path, capsys, bench):
    """As a damping factor slipped into Picard would: one more iteration per token (trained, 512)."""
    doc = copy.deepcopy(bench)
    c = doc["configurations"][DAMPED]
    assert c["mean_iterations"] == 2.0
    c["mean_iterations"] += 1
    c["mean_evaluations"] += 1
    code, _, err = run(tmp_path, capsys, doc)
    assert code == 1
    assert f"REGRESSION {DAMPED}: mean_iterations 2 -> 3 (allowed <= 2.064: 2% + 0.02 + 2/tokens)" in err
    assert f"REGRESSION {DAMPED}: mean_evaluations 2 -> 3" in err


def test_rounding_drift_passes(tmp_path, capsys, bench):
    doc = copy.deepcopy(bench)
    for c in doc["configurations"].values():
        if c["tokens"] == 512:
            c["mean_iterations"] += 1 / 512  # one token one iteration later
            if c["converged"] > 0:
                c["converged"] -= 1  # and one token fewer converged (the rounding allowance)
    assert run(tmp_path, capsys, doc)[0] == 0


def mid_rate(doc: dict) -> tuple[str, dict]:
    """A configuration of >= 100 tokens whose rate is well inside (0, 1)."""
    return next(
        (n, c)
        for n, c in sorted(doc["configurations"].items())
        if c["tokens"] >= 100 and 0.2 < c["converged"] / c["tokens"] < 0.8
    )


def test_rate_drop_is_flagged_by_the_binomial_test_and_chance_is_not(tmp_path, capsys):
    doc = copy.deepcopy(B.read(CONVERGENCE))
    name, c = mid_rate(doc)
    n, kb = c["tokens"], c["converged"]
    p = kb / n
    # the largest count the test calls a regression: P(X <= k + 1) < 0.01 (scipy as the reference)
    k_bad = max(k for k in range(kb) if binom.cdf(k + gate.FLIPS, n, p) < gate.ALPHA)
    c["converged"] = k_bad
    code, _, err = run(tmp_path, capsys, doc, baseline=CONVERGENCE)
    assert code == 1 and f"REGRESSION {name}: converged {kb}/{n} -> {k_bad}/{n}" in err
    assert "binomial" in err
    c["converged"] = k_bad + 1  # one token more: consistent with the baseline rate at alpha 0.01
    assert run(tmp_path, capsys, doc, baseline=CONVERGENCE)[0] == 0


@pytest.mark.parametrize(("kb", "n", "k", "flagged"), [(50, 100, 36, True), (50, 100, 40, False), (512, 512, 511, False), (512, 512, 510, True), (0, 10, 1, False), (0, 10, 2, True), (10, 10, 8, True), (10, 10, 9, False)])  # fmt: skip
def test_rate_check_known_answers(kb, n, k, flagged):
    base, now = {"tokens": n, "converged": kb}, {"tokens": n, "converged": k}
    found = gate.rate_check("x", base, now)
    assert (found is not None) is flagged, found
    p = kb / n
    low, high = binom.cdf(k + gate.FLIPS, n, p), binom.sf(k - gate.FLIPS - 1, n, p)
    assert flagged == bool(min(low, high) < gate.ALPHA)  # the same decision as scipy's tails


def test_unexplained_improvement_fails_unless_allowed(tmp_path, capsys):
    doc = copy.deepcopy(B.read(CONVERGENCE))
    name, c = mid_rate(doc)
    c["converged"] = c["tokens"]
    code, _, err = run(tmp_path, capsys, doc, baseline=CONVERGENCE)
    assert code == 1 and f"IMPROVED {name}: converged" in err and "unexplained" in err
    code, out, _ = run(tmp_path, capsys, doc, "--allow-improvements", baseline=CONVERGENCE)
    assert code == 0 and f"note: IMPROVED {name}" in out


def test_fewer_iterations_is_an_improvement(tmp_path, capsys, bench):
    doc = copy.deepcopy(bench)
    name, c = next(
        (n, c)
        for n, c in sorted(doc["configurations"].items())
        if c["mean_iterations"] > 100 and not c["rounding_sensitive"]
    )
    c["mean_iterations"] -= 50
    code, _, err = run(tmp_path, capsys, doc)
    assert code == 1 and f"IMPROVED {name}: mean_iterations" in err


def test_missing_configuration_fails_unless_allowed(tmp_path, capsys, bench):
    doc = copy.deepcopy(bench)
    gone = sorted(doc["configurations"])[0]
    del doc["configurations"][gone]
    code, _, err = run(tmp_path, capsys, doc)
    assert code == 1 and f"MISSING {gone}" in err
    assert run(tmp_path, capsys, doc, "--allow-missing")[0] == 0


def test_changed_tokens_or_settings_fail(tmp_path, capsys, bench):
    doc = copy.deepcopy(bench)
    doc["configurations"][DAMPED]["tokens"] = 511
    doc["configurations"][DAMPED]["converged"] = 511
    code, _, err = run(tmp_path, capsys, doc)
    assert code == 1 and f"CHANGED {DAMPED}: tokens 512 -> 511 (must be equal)" in err
    doc = copy.deepcopy(bench)
    doc["configurations"][DAMPED]["settings"]["rule"]["warmup"] = 5
    doc["settings"]["seed"] = 1
    code, _, err = run(tmp_path, capsys, doc)
    assert code == 1 and f"CHANGED {DAMPED}: made under other settings (rule:" in err
    assert "CHANGED settings: the baseline was made under other settings (seed: baseline 0, now 1)" in err


def test_rounding_sensitive_configurations_get_the_stated_looser_slack():
    base = {"tokens": 10, "converged": 5, "mean_iterations": 20.0, "rounding_sensitive": True}
    now = {**base, "mean_iterations": 20.0 + 0.08 * 20 + 0.5 + 4.0 - 0.01}
    assert gate.cost_checks("x", base, now) == []
    assert gate.cost_checks("x", {**base, "rounding_sensitive": False}, now)[0][0] == "REGRESSION"


def test_per_token_iterations_are_named_in_the_finding():
    base = {"tokens": 3, "converged": 3, "mean_iterations": 2.0, "iterations": [2, 2, 2]}
    now = {**base, "mean_iterations": 3.0, "iterations": [2, 5, 2]}
    [(kind, line)] = gate.check("x", base, now)
    assert kind == "REGRESSION" and line.endswith("[per-token iterations #1: 2 -> 5]")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is not a 'newllm-matrix/1' file nor a pytest-benchmark JSON"),
        ('{"format": "newllm-matrix/1", "settings": {}, "configurations": {"a": {"tokens": 2, "converged": 3, "mean_iterations": 1}}}', "converged 3 exceeds tokens 2"),
        ('{"format": "newllm-matrix/1", "settings": {}, "configurations": {"a": {"tokens": 2, "converged": 1}}}', "has no 'mean_iterations'"),
        ('{"format": "newllm-matrix/1", "settings": {}, "configurations": {"a": {"tokens": "2", "converged": 1, "mean_iterations": 1}}}', "'tokens' must be an integer >= 0, got '2'"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_error_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    code = gate_cli.main([str(path), "--baseline", str(BENCH)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert str(path) in err


def test_write_baseline_round_trip_and_the_module_entry_point(tmp_path, capsys, bench):
    src = tmp_path / "bench.json"
    src.write_text(json.dumps(as_benchmark_json(bench)))
    out = tmp_path / "base.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "newllm.tools.gate",
            str(src),
            "--write-baseline",
            str(out),
            "--command",
            "pytest bench",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    written = B.read(out)
    assert written["configurations"] == bench["configurations"] and written["settings"] == bench["settings"]
    assert written["source"]["command"] == "pytest bench"
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"benchmarks": [], "matrix": {}}))
    assert gate_cli.main([str(empty), "--write-baseline", str(out)]) == 2
    assert "holds no configuration" in capsys.readouterr().err
