"""Regenerate family 4's convergence baseline: ``python -m properties.regenerate_baseline [--device cpu]``.

Measures every configuration of ``properties/convergence.py`` (trained models come from the matrix
cache, trained there first when absent) and writes ``properties/baselines/convergence_<device>.json``
in the one baseline format (``newllm.matrix.baseline``). Run it (or ``ci/regenerate-baselines``, which
also regenerates the benchmarks' baseline) after an intended change of convergence behaviour, check
the printed table and ``git diff``, and commit the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from newllm.matrix import baseline as B
from properties import convergence as C


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m properties.regenerate_baseline", description=__doc__)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--cache", help="matrix cache of trained models (default: the shared one)")
    p.add_argument("--out", help="output file (default properties/baselines/convergence_<device>.json)")
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else C.baseline_path(args.device)
    cache = args.cache if args.cache else "default"
    configs: dict = {}
    for arch, state, rule in C.CASES:
        entries = C.measure(C.model_for(arch, state, cache, args.device), args.device, arch, state, rule)
        configs.update(entries)
        table = "  ".join(
            f"{e['tokens']}:{e['converged'] / e['tokens']:.2f}/{e['mean_iterations']:.1f}"
            for e in entries.values()
        )
        print(f"{arch}/{state}/{rule:10s} {table}", flush=True)
    B.write(out, C.document(configs, args.device))
    print(f"wrote {out} (torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
