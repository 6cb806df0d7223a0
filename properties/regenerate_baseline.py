"""Regenerate family 4's convergence baseline: ``python -m properties.regenerate_baseline [--device cpu]``.

Runs every configuration of ``properties/convergence.py`` (trained models are trained here, or
reused from ``--cache``) and writes ``properties/baselines/convergence_<device>.json``. Run it after
an intended change of convergence behaviour, check the printed table, and commit the file.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from properties import convergence as C


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m properties.regenerate_baseline", description=__doc__)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--cache", help="directory for the trained models (default: a temporary one)")
    p.add_argument("--out", help="output file (default properties/baselines/convergence_<device>.json)")
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else C.baseline_path(args.device)
    data = C.new_baseline(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache) if args.cache else Path(tmp)
        for arch in C.ARCHS:
            for state in C.STATES:
                model = C.model_for(arch, state, cache, args.device)
                for metric in C.METRICS:
                    entries = C.measure(model, state, metric)
                    data["configurations"][C.key(arch, state, metric)] = entries
                    table = "  ".join(
                        f"{e['tokens']}:{e['rate']:.2f}/{e['mean_iterations']:.1f}" for e in entries
                    )
                    print(f"{C.key(arch, state, metric):28s} {table}", flush=True)
    C.save(out, data)
    print(f"wrote {out} (torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
