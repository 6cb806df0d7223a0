"""``newllm bench-report``: benchmark JSON -> markdown tables (stdout, ``--markdown``) and a PNG (``--plot``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..tools import benchreport
from . import args as A
from .progress import Progress

NAME = "bench-report"
HELP = "turn pytest-benchmark JSON from bench/ into markdown tables and a PNG plot"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "json", nargs="+", help="pytest-benchmark JSON file(s) (pytest bench --benchmark-json ...)"
    )
    p.add_argument("--markdown", type=A.out_file(), help="also write the markdown report to this file")
    p.add_argument(
        "--plot",
        type=A.out_file(".png"),
        help="write a PNG to this path (ending in .png): iterations vs token count per architecture, "
        "throughput vs roofline",
    )
    p.add_argument("--title", default="Benchmark report", help="report heading (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no status line on stderr while plotting")


def run(args: argparse.Namespace) -> int:
    A.refuse_same_file({"--markdown": args.markdown, "--plot": args.plot}, args.json)
    entries = benchreport.load_entries(args.json)
    if not entries:
        raise ValueError(
            f"no benchmark entries of a known kind ({', '.join(benchreport.KINDS)}) in {args.json}"
        )
    text = benchreport.markdown(entries, args.title)
    if args.markdown:
        Path(args.markdown).expanduser().parent.mkdir(parents=True, exist_ok=True)
        with open(Path(args.markdown).expanduser(), "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text, end="")
    if args.plot:
        with Progress("bench-report", enabled=not args.quiet) as progress:
            progress(0, None, "plot")
            try:
                out = benchreport.plot(entries, args.plot)
            except ImportError:
                raise ValueError("--plot needs matplotlib: pip install 'newllm[plot]'") from None
        print(f"\nplot: {out}")
    return 0
