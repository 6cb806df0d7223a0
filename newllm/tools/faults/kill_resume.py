"""SIGKILL a ``newllm train`` process at random moments, resume it, and compare with an uninterrupted run.

``python -m newllm.tools.faults.kill_resume --kills 20 [--out DIR]`` prints one JSON line per kill and a
summary; exit 1 when any resumed run differs from the reference bit for bit. Without ``--out`` the runs
go to a temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ...runs.checkpoint import MANIFEST, load_checkpoint

#: A small but not instant Phase 1 job (spec loop, reduced vocab): several epochs, several seconds.
TRAIN_ARGS = [
    "--arch",
    "layerwise",
    "--dim",
    "16",
    "--vocab-size",
    "3000",
    "--tokens",
    "40",
    "--epochs",
    "6",
    "--loop",
    "spec",
    "--lr",
    "1e-3",
    "--threshold",
    "1e-4",
    "--max-iterations",
    "12",
    "--quiet",
]


def _cmd(out: Path, resume: bool) -> list[str]:
    return [
        sys.executable,
        "-m",
        "newllm",
        "train",
        *TRAIN_ARGS,
        "--out",
        str(out),
        *(["--resume"] if resume else []),
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_reference(out: Path) -> float:
    """Train uninterrupted into ``out``; return its wall time in seconds."""
    t0 = time.perf_counter()
    p = subprocess.run(_cmd(out, False), capture_output=True, text=True, env=_env(), timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"reference run failed: {p.stderr.strip()[-500:]}")
    return time.perf_counter() - t0


def _checkpoint_epoch(out: Path) -> int:
    try:
        return int(json.loads((out / MANIFEST).read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def kill_then_resume(out: Path, after_epoch: int, delay: float) -> dict:
    """Start a run; once its checkpoint reaches ``after_epoch`` (0: at once), wait ``delay`` s, SIGKILL it
    (if still running); then ``--resume`` it to the end."""
    proc = subprocess.Popen(
        _cmd(out, False), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()
    )
    while proc.poll() is None and _checkpoint_epoch(out) < after_epoch:
        time.sleep(0.01)
    try:
        proc.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = True
    epoch_at_kill = _checkpoint_epoch(out)
    p = subprocess.run(_cmd(out, True), capture_output=True, text=True, env=_env(), timeout=600)
    if p.returncode != 0:
        raise RuntimeError(
            f"resume after a kill (epoch {after_epoch} + {delay:.2f}s) failed: {p.stderr.strip()[-500:]}"
        )
    return {
        "after_epoch": after_epoch,
        "delay_s": delay,
        "killed": killed,
        # exit code of the first process when it ended by itself (0: it finished before the kill)
        "first_exit": None if killed else proc.returncode,
        "checkpoint_epoch_at_kill": epoch_at_kill,
    }


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _epoch_seconds(ref: Path) -> float:
    rows = [json.loads(x) for x in (ref / "log.jsonl").read_text().splitlines()]
    secs = [r["seconds"] for r in rows if r.get("event") == "epoch"]
    return sum(secs) / len(secs)


def campaign(root: Path, kills: int, seed: int) -> list[dict]:
    """Reference run, then ``kills`` kill-and-resume runs; each kill lands a seeded random fraction of an
    epoch after a seeded random checkpoint (0 = during start-up / epoch 1). One record per kill."""
    root.mkdir(parents=True, exist_ok=True)
    ref = root / "reference"
    ref_s = run_reference(ref)
    epoch_s = _epoch_seconds(ref)
    epochs = int(TRAIN_ARGS[TRAIN_ARGS.index("--epochs") + 1])
    rng = random.Random(seed)
    rows = []
    for i in range(kills):
        after = rng.randint(0, epochs - 1)
        delay = rng.uniform(0.0, 1.5 * epoch_s) + (3.0 * rng.random() if after == 0 else 0.0)
        out = root / f"kill-{i:03d}"
        row = kill_then_resume(out, after, delay)
        row["bit_exact"] = same_weights(ref, out)
        row.update(reference_s=ref_s, epoch_s=epoch_s)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="directory for the runs (default: a temporary one, removed at the end)")
    a = ap.parse_args(argv)
    if a.out is None:
        with tempfile.TemporaryDirectory(prefix="kill-resume-") as tmp:
            rows = campaign(Path(tmp), a.kills, a.seed)
    else:
        rows = campaign(Path(a.out), a.kills, a.seed)
    for r in rows:
        print(json.dumps(r))
    ok = sum(r["bit_exact"] and r["first_exit"] in (None, 0) for r in rows)
    killed = sum(r["killed"] for r in rows)
    print(
        json.dumps(
            {
                "kills": len(rows),
                "actually_killed": killed,
                "bit_exact": ok,
                "epochs_at_kill": sorted({r["checkpoint_epoch_at_kill"] for r in rows}, key=str),
            }
        )
    )
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
