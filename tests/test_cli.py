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
    args = ["solve", "--tokens", "3", "--dim", "16", "--dropout", "--seed", "4", "--json"]
    _, a, _ = run_cli(capsys, *args)
    _, b, _ = run_cli(capsys, *args)
    da, db = json.loads(a), json.loads(b)
    da.pop("seconds"), db.pop("seconds")
    assert da == db


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["solve", "--tokens", "0"], "positive"),
        (["solve", "--tokens", "-3"], "positive"),
        (["solve", "--token-ids", "1,x"], "not an integer"),
        (["solve", "--token-ids", "1.5"], "not an integer"),
        (["solve", "--token-ids", ""], "comma-separated"),
        (["solve", "--token-ids", "60000"], "out of range"),
        (["solve", "--token-ids", "-1"], "out of range"),
        (["solve", "--tokens", "2", "--threshold", "0"], "threshold"),
        (["solve", "--tokens", "2", "--max-iterations", "0"], "max_iterations"),
        (["solve", "--tokens", "2", "--warmup", "200"], "warmup"),
        (["solve", "--tokens", "2", "--structure", "2,0"], "structure[1]"),
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
