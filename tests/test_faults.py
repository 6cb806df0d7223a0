"""Faults: SIGKILL at random points then --resume is bit-exact; a live run's directory is locked."""

import json
import subprocess
import sys

import pytest

from newllm.runs.lock import RunLock, RunLocked
from newllm.tools.faults.kill_resume import campaign

#: ``newllm train`` of a tiny model (2 tokens, dim 8): the run the lock and resume tests start.
TINY_TRAIN = ["train", "--tokens", "2", "--dim", "8", "--vocab-size", "300"]


@pytest.mark.slow
def test_a_killed_run_resumes_bit_exact(tmp_path):
    """One seeded kill (the heavy lane below kills more)."""
    rows = campaign(tmp_path, kills=1, seed=1)
    assert len(rows) == 1 and rows[0]["bit_exact"], rows


@pytest.mark.heavy
def test_killed_runs_resume_bit_exact(tmp_path):
    rows = campaign(tmp_path, kills=4, seed=2)
    assert all(r["bit_exact"] for r in rows), rows


def test_a_locked_run_directory_is_not_written_by_a_second_run(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):
        with pytest.raises(RunLocked, match="locked by a live run"):
            RunLock(out).acquire()
        p = subprocess.run(
            [sys.executable, "-m", "newllm", *TINY_TRAIN, "--out", str(out), "--quiet"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 2 and "locked by a live run" in p.stderr and "Traceback" not in p.stderr
        assert not (out / "checkpoint.json").exists()
    RunLock(out).acquire().release()  # free again once the holder let go


def test_the_lock_dies_with_its_holder(tmp_path):
    out = tmp_path / "run"
    code = (
        f"from newllm.runs.lock import RunLock; import os, signal; RunLock({str(out)!r}).acquire(); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", code], timeout=60)
    RunLock(out).acquire().release()


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path, capsys):
    from newllm.cli.main import main

    args = [*TINY_TRAIN, "--epochs", "1", "--quiet", "--json"]
    assert main([*args, "--out", str(tmp_path / "a"), "--resume"]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    outs = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"epoch"' in x]
    assert outs[0]["mean_loss"] == outs[1]["mean_loss"]
