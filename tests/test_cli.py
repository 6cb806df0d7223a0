import json
import subprocess
import sys

import pytest

from newllm.cli.main import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_solve_json_has_the_documented_keys(capsys):
    code, out, _ = run_cli(capsys, "solve", "--arch", "sequential", "--tokens", "4", "--dim", "16", "--json")
    assert code == 0
    o = json.loads(out)
    for key in [
        "arch",
        "structure",
        "tokens",
        "metric",
        "threshold",
        "converged",
        "rate",
        "mean_iterations",
        "iterations",
        "diverged",
        "context_rms",
        "effective_rank",
        "seconds",
    ]:
        assert key in o, key
    assert o["arch"] == "sequential" and o["structure"] == [2] and o["tokens"] == 4
    assert o["token_ids"] == [100, 200, 300, 400]
    assert len(o["iterations"]) == 4 and 0 <= o["rate"] <= 1


def test_solve_structure_and_table(capsys):
    code, out, _ = run_cli(
        capsys,
        "solve",
        "--structure",
        "2,2",
        "--token-ids",
        "1,2,3",
        "--dim",
        "16",
        "--metric",
        "rel",
        "--threshold",
        "1e-3",
        "--context-mode",
        "carry",
    )
    assert code == 0
    assert "mixed" in out and "converged" in out and "rel" in out


def test_solve_json_is_deterministic(capsys):
    args = ["solve", "--tokens", "3", "--dim", "16", "--train-mode", "--seed", "4", "--json"]
    _, a, _ = run_cli(capsys, *args)
    _, b, _ = run_cli(capsys, *args)
    da, db = json.loads(a), json.loads(b)
    da.pop("seconds"), db.pop("seconds")
    assert da == db


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["solve", "--tokens", "0"], "--tokens: expected an integer in [1, 9999999], got 0"),
        (["solve", "--tokens", "-3"], "--tokens: expected an integer in [1,"),
        (["solve", "--token-ids", "1,x"], "not an integer"),
        (["solve", "--token-ids", "1.5"], "not an integer"),
        (["solve", "--token-ids", ""], "comma-separated"),
        (["solve", "--token-ids", "60000"], "out of range"),
        (["solve", "--token-ids", "-1"], "out of range"),
        (["solve", "--tokens", "2", "--threshold", "0"], "threshold"),
        (["solve", "--tokens", "2", "--max-iterations", "0"], "--max-iterations: expected an integer in [1,"),
        (["solve", "--tokens", "2", "--warmup", "200"], "warmup"),
        (["solve", "--tokens", "2", "--structure", "2,0"], "--structure: 0 is out of range"),
        (["solve", "--tokens", "2", "--arch", "rnn"], "invalid choice"),
        (["solve"], "required"),
        (["solve", "--tokens", "2", "--token-ids", "3"], "not allowed"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, needle):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_console_script_runs_as_a_process():
    p = subprocess.run(
        [sys.executable, "-m", "newllm", "solve", "--tokens", "2", "--dim", "8", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["tokens"] == 2
    p = subprocess.run(
        [sys.executable, "-m", "newllm", "solve", "--tokens", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "old, new, argv",
    [
        ("--dropout", "--train-mode", ["solve", "--tokens", "2", "--dim", "8", "--json"]),
        ("--tolerance", "--threshold", None),
    ],
)
def test_renamed_flags_still_work_for_one_release_with_a_warning(capsys, old, new, argv):
    from newllm.cli.main import build_parser

    if argv is not None:
        code, out_old, err = run_cli(capsys, *argv, old)
        assert code == 0 and f"warning: {old} is deprecated, use {new}" in err
        _, out_new, _ = run_cli(capsys, *argv, new)
        a, b = json.loads(out_old), json.loads(out_new)
        a.pop("seconds"), b.pop("seconds")
        assert a == b and a["train_mode"] is True
    else:
        ns = build_parser().parse_args(["train", "--tokens", "3", "--out", "x", old, "0.5"])
        assert ns.threshold == 0.5 and "deprecated" in capsys.readouterr().err


def test_renamed_config_keys_load_with_a_deprecation_warning():
    from newllm.config import SolverConfig
    from newllm.phase1 import Phase1Config

    with pytest.warns(DeprecationWarning, match="'tolerance' is deprecated, use 'threshold'"):
        assert Phase1Config.from_dict({"tolerance": 0.2}).threshold == 0.2
    with pytest.warns(DeprecationWarning, match="'dropout' is deprecated, use 'train_mode'"):
        assert SolverConfig.from_dict({"dropout": True}).train_mode is True
    with pytest.raises(ValueError, match="both 'tolerance'"):
        Phase1Config.from_dict({"tolerance": 0.2, "threshold": 0.1})


def test_solve_certify_reports_bounds_in_json_and_says_uncertified_in_the_table(capsys):
    base = ("solve", "--dim", "16", "--vocab-size", "200", "--tokens", "3", "--method", "anderson", "--certify")
    code, out, _ = run_cli(capsys, *base, "--metric", "rel", "--threshold", "1e-6", "--max-iterations", "400", "--json")
    o = json.loads(out)
    assert code == 0 and o["certify"] is True and o["converged"] == 3 and o["certified"] == 3
    assert "none" not in o["error_bound_kind"] and all(0 < b < 1e-2 for b in o["error_bound"])
    # the seeds' mse < 0.01 passes after 2 iterations, far from a certifiable context
    code, out, _ = run_cli(capsys, *base)
    assert code == 0 and out.count("converged (residual only, uncertified)") == 3 and "error ≤" not in out
    code, out, _ = run_cli(capsys, *base, "--metric", "rel", "--threshold", "1e-6", "--max-iterations", "400")
    assert out.count("converged, error ≤ ") == 3 and "certified 3/3" in out
