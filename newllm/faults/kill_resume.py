"""SIGKILL a ``newllm train`` process at random moments, resume it, and compare with an uninterrupted run.

``python -m newllm.faults.kill_resume --kills 20 --out DIR`` prints one JSON line per kill and a
summary; exit 1 when any resumed run differs from the reference bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..checkpoint import MANIFEST, load_checkpoint

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
    "--tolerance",
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


def kill_then_resume(out: Path, delay: float) -> dict:
    """Start a run, SIGKILL it after ``delay`` s (if still running), then ``--resume`` it to the end."""
    proc = subprocess.Popen(
        _cmd(out, False), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()
    )
    try:
        proc.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = True
    epoch_at_kill = None
    if (out / MANIFEST).exists():
        epoch_at_kill = json.loads((out / MANIFEST).read_text())["epoch"]
    p = subprocess.run(_cmd(out, True), capture_output=True, text=True, env=_env(), timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"resume after a kill at {delay:.2f}s failed: {p.stderr.strip()[-500:]}")
    return {"delay_s": delay, "killed": killed, "checkpoint_epoch_at_kill": epoch_at_kill}


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def campaign(root: Path, kills: int, seed: int, ref_seconds: float | None = None) -> list[dict]:
    """Reference run, then ``kills`` kill-and-resume runs at seeded random delays; one record per kill."""
    root.mkdir(parents=True, exist_ok=True)
    ref = root / "reference"
    ref_s = run_reference(ref) if ref_seconds is None else ref_seconds
    rng = random.Random(seed)
    rows = []
    for i in range(kills):
        delay = rng.uniform(0.2, ref_s)
        out = root / f"kill-{i:03d}"
        row = kill_then_resume(out, delay)
        row["bit_exact"] = same_weights(ref, out)
        row["reference_s"] = ref_s
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    rows = campaign(Path(a.out), a.kills, a.seed)
    for r in rows:
        print(json.dumps(r))
    ok = sum(r["bit_exact"] for r in rows)
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
