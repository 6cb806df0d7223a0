"""``newllm bench-report``: benchmark JSON -> markdown tables (stdout, ``--markdown``) and a PNG (``--plot``)."""

from __future__ import annotations

import argparse

from ..tools import benchreport

NAME = "bench-report"
HELP = "turn pytest-benchmark JSON from bench/ into markdown tables and a PNG plot"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "json", nargs="+", help="pytest-benchmark JSON file(s) (pytest bench --benchmark-json ...)"
    )
    p.add_argument("--markdown", help="also write the markdown report to this file")
    p.add_argument(
        "--plot", help="write a PNG: iterations vs token count per architecture, throughput vs roofline"
    )
    p.add_argument("--title", default="Benchmark report", help="report heading (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    entries = benchreport.load_entries(args.json)
    if not entries:
        raise ValueError(
            f"no benchmark entries of a known kind ({', '.join(benchreport.KINDS)}) in {args.json}"
        )
    text = benchreport.markdown(entries, args.title)
    print(text, end="")
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(text)
    if args.plot:
        try:
            out = benchreport.plot(entries, args.plot)
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install 'newllm[plot]'") from None
        print(f"\nplot: {out}")
    return 0
