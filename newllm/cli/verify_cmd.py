"""``newllm verify``: run ``newllm.testing.check_model`` on a checkpoint, a built-in model or a user's
model factory; a table of checks or one JSON object. Exit 0: every check passed (skipped ones allowed);
1: a check failed; 2: bad input (one ``error:`` line)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from typing import Any

from ..config import SolverConfig
from ..metrics import METRICS
from ..model import build_model
from ..runs.jsonio import atomic_write_json
from ..solvers import SOLVERS
from ..testing import CHECKS, check_model, make_baseline
from ..tokens import spread_token_ids
from . import common

NAME = "verify"
HELP = "run the property checks (newllm.testing) on a checkpoint, a built-in model or your own model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_model_arguments(p)
    src = p.add_argument_group("model source (exactly one: --checkpoint, --model, or the model flags above)")
    src.add_argument("--checkpoint", help="a run directory (its checkpoint.json and weights)")
    src.add_argument(
        "--model",
        metavar="MODULE:FACTORY",
        help="import MODULE (the current directory is searched first) and call FACTORY() for the "
        "model: this runs your own code (docs/verify.md)",
    )
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--tokens", type=int, help="N probe tokens spread over the vocabulary (default 16)")
    tok.add_argument("--token-ids", type=common.int_list, help="explicit comma-separated probe token ids")
    g = p.add_argument_group("the stated solver settings (default: SolverConfig())")
    d = SolverConfig()
    g.add_argument("--metric", choices=tuple(METRICS), default=d.metric, help=f"default {d.metric}")
    g.add_argument("--threshold", type=float, default=d.threshold, help=f"default {d.threshold:g}")
    g.add_argument("--max-iterations", type=int, default=d.max_iterations, help=f"default {d.max_iterations}")
    g.add_argument("--warmup", type=int, default=d.warmup, help=f"default {d.warmup}")
    g.add_argument("--method", choices=tuple(SOLVERS), default=d.method, help=f"default {d.method}")
    c = p.add_argument_group("checks")
    c.add_argument("--checks", type=_names, help=f"comma-separated subset of: {', '.join(CHECKS)}")
    c.add_argument(
        "--contractive",
        action="store_true",
        help="claim the update contracts at the fixed points: contraction and uniqueness are judged",
    )
    c.add_argument(
        "--baseline", metavar="FILE", help="gate convergence against this baseline (binomial test)"
    )
    c.add_argument(
        "--write-baseline", metavar="FILE", help="write this run's convergence numbers as a baseline"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed for the built-in model's weights and the probes (default 0)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _names(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    bad = [t for t in items if t not in CHECKS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown check {bad[0]!r}; expected names from: {', '.join(CHECKS)}"
        )
    return items


def load_factory(spec: str) -> Any:
    """``MODULE:FACTORY`` -> ``FACTORY()`` (the current directory first on ``sys.path``)."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr.isidentifier():
        raise ValueError(f"--model must be MODULE:FACTORY (e.g. examples.gru_model:build), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"--model {spec!r}: cannot import module {module!r} ({exc})") from None
    factory = getattr(mod, attr, None)
    if not callable(factory):
        raise ValueError(f"--model {spec!r}: module {module!r} has no callable {attr!r}")
    return factory()


def _model(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The model and a JSON-ready description of where it came from."""
    flags = [f"--{f.replace('_', '-')}" for f in common.MODEL_FLAGS if getattr(args, f, None) is not None]
    sources = [
        s
        for s, on in (("--checkpoint", args.checkpoint), ("--model", args.model), ("model flags", flags))
        if on
    ]
    if len(sources) != 1:
        raise ValueError(
            "give exactly one model source: --checkpoint DIR, --model MODULE:FACTORY, or built-in "
            f"model flags (--arch, --structure, --dim, ...); got {' and '.join(sources) or 'none'}"
        )
    if args.checkpoint:
        return common.model_from_checkpoint(args), {"source": "checkpoint", "checkpoint": args.checkpoint}
    if args.model:
        return load_factory(args.model), {"source": "factory", "factory": args.model}
    seed = args.seed if args.model_seed is None else args.model_seed
    cfg = common.model_config(args)
    return build_model(cfg, seed=seed), {"source": "built-in", "config": cfg.to_dict(), "model_seed": seed}


def _token_ids(args: argparse.Namespace, model: Any) -> list[int] | None:
    if args.token_ids is not None:
        return list(args.token_ids)
    if args.tokens is None:
        return None
    vocab = getattr(model, "vocab_size", None)
    if not isinstance(vocab, int):
        raise ValueError("--tokens needs a model with a vocab_size attribute: give --token-ids")
    return spread_token_ids(args.tokens, vocab)


def run(args: argparse.Namespace) -> int:
    model, source = _model(args)
    solver = SolverConfig(
        metric=args.metric,
        threshold=args.threshold,
        max_iterations=args.max_iterations,
        warmup=args.warmup,
        method=args.method,
    )
    if args.write_baseline and args.checks is not None and "convergence" not in args.checks:
        raise ValueError("--write-baseline needs the convergence check: add it to --checks")
    t0 = time.perf_counter()
    report = check_model(
        model,
        token_ids=_token_ids(args, model),
        checks=args.checks,
        baseline=args.baseline,
        seed=args.seed,
        solver=solver,
        contractive=args.contractive,
    )
    out = {"source": source, **report.to_dict(), "seconds": time.perf_counter() - t0}
    if args.write_baseline:
        atomic_write_json(args.write_baseline, make_baseline(report.settings, report["convergence"].numbers))
        out["baseline_written"] = args.write_baseline
    if args.json:
        common.print_json(out)
    else:
        _print_table(out, report.table())
    return 0 if report.passed else 1


def _print_table(out: dict[str, Any], lines: list[str]) -> None:
    m, s = out["model"], out["solver"]
    where = out["source"].get("checkpoint") or out["source"].get("factory") or "built-in"
    print(
        f"{m['class']} ({where}): context dim {m['context_dim']}, {m['dtype']} on {m['device']}, "
        f"{m['parameters']} parameters; {len(out['token_ids'])} probe tokens; solver {s['metric']} < "
        f"{s['threshold']:g}, warmup {s['warmup']}, max {s['max_iterations']}, {s['method']}; seed {out['seed']}"
        f"{'; contraction claimed' if out['contractive'] else ''}"
    )
    for line in lines:
        print(line)
    if "baseline_written" in out:
        print(f"baseline written to {out['baseline_written']}")
    print(f"{'PASSED' if out['passed'] else 'FAILED: ' + ', '.join(out['failed'])} ({out['seconds']:.1f} s)")
