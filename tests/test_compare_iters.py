"""The count gate (ci/compare_iters.py): it passes an unchanged run and fails a doctored one."""

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "ci" / "compare_iters.py"
BASELINE = ROOT / "bench" / "baselines" / "cpu.json"

_spec = importlib.util.spec_from_file_location("compare_iters", SCRIPT)
gate = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gate  # dataclasses look their module up while the module loads
_spec.loader.exec_module(gate)


def run_from_baseline(baseline: dict) -> dict:
    """A pytest-benchmark-shaped JSON whose counts equal the baseline's."""
    benches = []
    for name, entry in baseline["benchmarks"].items():
        extra = dict(entry["info"], counts=copy.deepcopy(entry["counts"]))
        benches.append(
            {"fullname": name, "name": name.split("::")[-1], "extra_info": extra, "stats": {"min": 0.5}}
        )
    return {"benchmarks": benches, "machine_info": {}, "commit_info": {}, "datetime": "2026-01-01T00:00:00"}


def call(tmp_path, run: dict, *extra: str, baseline: Path = BASELINE):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path), "--baseline", str(baseline), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def baseline() -> dict:
    return json.loads(BASELINE.read_text())


def damped(run: dict) -> tuple[dict, str]:
    """Doctor the run as a damping factor slipped into Picard would: one more iteration per token at
    the seeds' tolerance on the trained layerwise model."""
    for b in run["benchmarks"]:
        e = b["extra_info"]
        if (
            e.get("kind"),
            e.get("arch"),
            e.get("state"),
            e.get("tolerance"),
            e.get("method"),
            e.get("tokens"),
        ) == (
            "iterations",
            "layerwise",
            "trained",
            "mse0.01",
            "picard",
            512,
        ):
            for k in (
                "median_iterations",
                "p90_iterations",
                "max_iterations",
                "mean_iterations",
                "mean_evaluations",
            ):
                e["counts"][k] += 1
            return run, b["fullname"]
    raise AssertionError("the baseline lacks the trained layerwise Picard 512-token case")


def test_committed_baseline_covers_every_cpu_iteration_case(baseline):
    from bench.test_iterations import CASES

    assert baseline["format"] == gate.FORMAT
    names = set(baseline["benchmarks"])
    for case in CASES:
        name = "bench/test_iterations.py::test_iterations_to_converge[cpu-" + "-".join(map(str, case)) + "]"
        assert name in names, name
    for entry in baseline["benchmarks"].values():
        for key in entry["counts"]:
            gate.rule_for(key)  # every stored count has a tolerance rule


def test_unchanged_run_passes(tmp_path, baseline):
    r = call(tmp_path, run_from_baseline(baseline))
    assert r.returncode == 0, r.stderr
    assert f"OK: counts of {len(baseline['benchmarks'])} baseline benchmarks" in r.stdout
    assert "information only" in r.stdout


def test_damping_regression_fails_naming_the_benchmark_and_numbers(tmp_path, baseline):
    run, name = damped(run_from_baseline(baseline))
    base = baseline["benchmarks"][name]["counts"]
    r = call(tmp_path, run)
    assert r.returncode == 1
    assert (
        f"REGRESSION {name}: mean_iterations {base['mean_iterations']:g} -> {base['mean_iterations'] + 1:g}"
        in r.stderr
    )
    assert f"median_iterations {base['median_iterations']:g} -> {base['median_iterations'] + 1:g}" in r.stderr


def test_small_drift_within_tolerance_passes(tmp_path, baseline):
    run = run_from_baseline(baseline)
    for b in run["benchmarks"]:
        c = b["extra_info"]["counts"]
        if c.get("tokens") == 512:
            c["mean_iterations"] += 1 / 512  # one token one iteration later
            c["rate"] = max(0.0, c["rate"] - 1 / 512)  # and one token fewer converged
    r = call(tmp_path, run)
    assert r.returncode == 0, r.stderr


def test_lower_rate_fails(tmp_path, baseline):
    run = run_from_baseline(baseline)
    b = next(b for b in run["benchmarks"] if b["extra_info"]["counts"].get("rate", 0) > 0.5)
    b["extra_info"]["counts"]["rate"] -= 0.5
    r = call(tmp_path, run)
    assert r.returncode == 1 and f"REGRESSION {b['fullname']}: rate" in r.stderr


def test_missing_benchmark_fails_unless_allowed(tmp_path, baseline):
    run = run_from_baseline(baseline)
    gone = run["benchmarks"].pop(0)["fullname"]
    r = call(tmp_path, run)
    assert r.returncode == 1 and f"MISSING {gone}" in r.stderr
    assert call(tmp_path, run, "--allow-missing").returncode == 0


def test_unexplained_improvement_fails_unless_allowed(tmp_path, baseline):
    run = run_from_baseline(baseline)
    b = next(b for b in run["benchmarks"] if b["extra_info"]["counts"].get("mean_iterations", 0) > 100)
    b["extra_info"]["counts"]["mean_iterations"] -= 50
    r = call(tmp_path, run)
    assert r.returncode == 1 and f"IMPROVED {b['fullname']}" in r.stderr
    assert call(tmp_path, run, "--allow-improvements").returncode == 0


def test_changed_token_count_fails(tmp_path, baseline):
    run = run_from_baseline(baseline)
    run["benchmarks"][0]["extra_info"]["counts"]["tokens"] += 1
    r = call(tmp_path, run)
    assert r.returncode == 1 and "(must be equal)" in r.stderr


def test_write_baseline_round_trip_and_unknown_count(tmp_path):
    run = {
        "benchmarks": [
            {
                "fullname": "bench/x.py::test_a[cpu]",
                "extra_info": {
                    "kind": "iterations",
                    "arch": "layerwise",
                    "counts": {"tokens": 4.0, "rate": 1.0},
                },
                "stats": {"min": 0.1},
            },
            {"fullname": "bench/x.py::test_speed", "extra_info": {"kind": "throughput", "speedup": 12.0}},
        ],
        "machine_info": {"node": "n", "cpu": {"brand_raw": "cpu"}},
        "commit_info": {"id": "abc"},
        "datetime": "2026-01-01T00:00:00",
    }
    src = tmp_path / "src.json"
    src.write_text(json.dumps(run))
    out = tmp_path / "base.json"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), str(src), "--write-baseline", str(out), "--command", "pytest bench"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    base = json.loads(out.read_text())
    assert list(base["benchmarks"]) == ["bench/x.py::test_a[cpu]"]  # only entries with counts
    assert base["source"]["command"] == "pytest bench" and base["source"]["commit"] == "abc"
    assert call(tmp_path, run, baseline=out).returncode == 0
    run["benchmarks"][0]["extra_info"]["counts"]["wobble"] = 1.0
    base["benchmarks"]["bench/x.py::test_a[cpu]"]["counts"]["wobble"] = 1.0
    out.write_text(json.dumps(base))
    r = call(tmp_path, run, baseline=out)
    assert r.returncode == 2 and "no tolerance rule for count 'wobble'" in r.stderr


def test_not_a_benchmark_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    r = subprocess.run([sys.executable, str(SCRIPT), str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "not a pytest-benchmark JSON file" in r.stderr


def test_rules_slack():
    rule = gate.rule_for("mean_iterations")
    assert rule.slack(2.0, 512) == pytest.approx(0.02 + 0.04 + 2 / 512)
    assert gate.rule_for("spec_epochs_to_95").slack(1.0, None) == 0.0
    with pytest.raises(KeyError, match="no tolerance rule"):
        gate.rule_for("seconds")
