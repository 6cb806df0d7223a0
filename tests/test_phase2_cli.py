"""``newllm phase2`` on tiny Phase 1 runs made with ``newllm train --samples-json``."""

import json
import shutil

import pytest
import torch

import newllm
from newllm.cli.main import main
from newllm.phase1.cache import load_cache
from newllm.runs.checkpoint import load_model

SAMPLES = [[1, 2, 3, 4, 5], [6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16, 17, 18], [3, 4, 5, 6]]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def phase2(capsys, run_dir, out, *flags):
    """``newllm phase2 --checkpoint RUN_DIR --out OUT --quiet FLAGS...`` -> (exit code, stdout, stderr)."""
    return run_cli(capsys, "phase2", "--checkpoint", run_dir, "--out", out, "--quiet", *flags)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("p1")
    (d / "samples.json").write_text(json.dumps(SAMPLES))
    argv = ["train", "--samples-json", d / "samples.json", "--dim", "8", "--vocab-size", "32"]
    argv += ["--loop", "batched", "--epochs", "1", "--out", d / "run", "--quiet", "--json"]
    assert main([str(a) for a in argv]) == 0
    return d / "run"


def test_phase2_json_lines(run_dir, tmp_path, capsys):
    out = tmp_path / "p2"
    code, stdout, _ = phase2(capsys, run_dir, out, "--epochs", "2", "--val-fraction", "0.4", "--json")
    assert code == 0
    lines = [json.loads(x) for x in stdout.splitlines()]
    assert [x["event"] for x in lines] == ["epoch", "epoch", "done"]
    assert set(lines[0]["val"]) == {"ce", "ppl", "acc", "positions"}
    done = lines[-1]
    assert done["cache_mode"] == "reset" and done["model"] == lines[1]["val"] and done["epochs"] == 2
    assert set(done["baselines"]) == {"unigram", "bigram"}
    assert done["baselines"]["bigram"]["positions"] == done["val_positions"] == done["model"]["positions"]
    assert done["train_conversations"] + done["val_conversations"] == len(SAMPLES)
    assert done["beats_bigram"] == (done["model"]["ce"] < done["baselines"]["bigram"]["ce"])
    # resume to 3 epochs continues from epoch 2; without --resume the directory is refused
    code, stdout, _ = phase2(capsys, run_dir, out, "--epochs", "3", "--val-fraction", "0.4", "--json", "--resume")
    assert code == 0 and [json.loads(x).get("epoch") for x in stdout.splitlines()][:1] == [3]
    code, stdout, err = phase2(capsys, run_dir, out)
    assert code == 2 and "already holds a checkpoint" in err and err.count("\n") == 1


def test_phase2_carry_rebuilds_the_cache(run_dir, tmp_path, capsys):
    out = tmp_path / "carry"
    code, stdout, _ = phase2(capsys, run_dir, out, "--cache-mode", "carry", "--epochs", "1")
    assert code == 0 and "contexts carry" in stdout and "bigram" in stdout
    cache = load_cache(out / "cache.safetensors")
    assert cache.context_mode == "carry"
    model = load_model(run_dir)
    reset = load_cache(run_dir / "cache.safetensors")
    solver = newllm.SolverConfig.from_dict({**reset.solver, "context_mode": "carry"})
    for s, ids in enumerate(SAMPLES):
        got_ids, ctx = cache.sample(s)
        assert got_ids.tolist() == ids
        torch.testing.assert_close(ctx, newllm.solve(model, ids, solver).context)
    state = json.loads((out / "checkpoint.json").read_text())["state"]
    assert state["context_mode"] == "carry" and state["phase1_tag"] == reset.checkpoint
    assert json.loads((out / "checkpoint.json").read_text())["files"]["cache"]["name"] == "cache.safetensors"
    # --resume reuses the carry cache the run lists (verified) instead of rebuilding it
    carry = ["--cache-mode", "carry", "--json"]
    code, stdout, _ = phase2(capsys, run_dir, out, *carry, "--epochs", "2", "--resume")
    done = json.loads(stdout.splitlines()[-1])
    assert code == 0 and done["cache_seconds"] is None and done["cache_mode"] == "carry" and done["epochs"] == 2
    # a cache file that no manifest lists is never trusted: a fresh run rebuilds (and lists) its own
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(out / "cache.safetensors", again / "cache.safetensors")
    code, stdout, _ = phase2(capsys, run_dir, again, *carry, "--epochs", "1")
    assert code == 0 and json.loads(stdout.splitlines()[-1])["cache_seconds"] > 0


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--checkpoint", "/nonexistent/run"], "does not exist"),
        (["--assistant-only"], "needs the run's data.json"),
        (["--epochs", "0"], "--epochs: expected an integer in [1, 1000000], got 0"),
        (["--cache-mode", "other"], "invalid choice: 'other'"),
    ],
)
def test_phase2_errors_exit_2_with_one_line(run_dir, tmp_path, capsys, argv, match):
    base = [] if "--checkpoint" in argv else ["--checkpoint", run_dir]
    code, out, err = run_cli(capsys, "phase2", *base, *argv, "--out", tmp_path / "e", "--quiet")
    assert code == 2 and out == "" and match in err and err.count("\n") == 1
