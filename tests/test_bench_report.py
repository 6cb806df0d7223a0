import json

from newllm.cli.main import main
from newllm.tools import benchreport


def entry(fullname, **extra_info):
    """A pytest-benchmark entry carrying only ``fullname`` and ``extra_info``."""
    return {"fullname": fullname, "extra_info": extra_info}


def entries_json(tmp_path):
    def it(arch, state, tokens, med, rate):
        counts = dict(
            tokens=float(tokens),
            median_iterations=med,
            p90_iterations=med + 1,
            max_iterations=med + 2,
            mean_iterations=med,
            mean_evaluations=med,
            rate=rate,
            diverged=0.0,
        )
        extra = dict(
            kind="iterations",
            arch=arch,
            state=state,
            tolerance="mse0.01",
            method="picard",
            tokens=tokens,
            device="cpu",
            counts=counts,
        )
        return {
            "fullname": f"b::t[{arch}-{state}-{tokens}]",
            "name": "t",
            "extra_info": extra,
            "stats": {"min": 0.1},
        }

    benches = [
        it("layerwise", "untrained", 1, 5.0, 1.0),
        it("layerwise", "untrained", 512, 6.0, 0.5),
        it("sequential", "trained", 512, 3.0, 1.0),
    ]
    layerwise = dict(arch="layerwise", device="cpu", tokens=512)
    gflops = dict(solve_gflops=39.0, roofline_gflops=70.0, roofline_fraction=39 / 70)
    thr = dict(kind="throughput", dtype="float32", token_iterations_per_s=3e4, **gflops)
    benches.append(entry("b::thr", **thr, **layerwise))
    loop = dict(kind="loop_speedup", arch="mixed", device="cpu", tokens=512, iterations=20, speedup=15.8)
    benches.append(entry("b::loop", **loop))
    steps = {"spec_epochs_to_95": 1.0, "batched_epochs_to_95": 1.0}
    steps |= {"spec_optimizer_steps": 1058.0, "batched_optimizer_steps": 6.0}
    p1 = dict(kind="phase1_time_to_95", vocab_size=2048, speedup=37.3, counts=steps)
    benches.append(entry("b::p1", **p1, **layerwise))
    benches.append(entry("b::other", kind="something-else"))
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    return path


def test_markdown_tables(tmp_path):
    entries = benchreport.load_entries([entries_json(tmp_path)])
    assert len(entries) == 6  # the unknown kind is left out
    md = benchreport.markdown(entries, "T")
    assert md.startswith("# T\n")
    assert "| cpu | layerwise | untrained | mse0.01 | picard | 5 / 6 / 7 · 100% | 6 / 7 / 8 · 50% |" in md
    assert "| cpu | sequential | trained | mse0.01 | picard | – | 3 / 4 / 5 · 100% |" in md
    assert "| cpu | float32 | layerwise | 512 | 3e+04 | 39 | 70 | 0.56 |" in md
    assert "| batched solve vs per-token loop | cpu | mixed | 512 tokens × 20 iterations | 15.8x |" in md
    assert "optimizer steps 1058/6 | 37.3x |" in md
    # sequential sorts before layerwise, untrained before trained
    assert md.index("| cpu | sequential |") < md.index("| cpu | layerwise |")


def test_cli_writes_markdown_and_png(tmp_path, capsys):
    src = entries_json(tmp_path)
    md, png = tmp_path / "r.md", tmp_path / "out" / "r.png"
    assert main(["bench-report", str(src), "--markdown", str(md), "--plot", str(png)]) == 0
    assert md.read_text() in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["bench-report", str(bad)]) == 2
    assert "is not pytest-benchmark JSON" in capsys.readouterr().err
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"benchmarks": [{"fullname": "x", "extra_info": {}}]}))
    assert main(["bench-report", str(empty)]) == 2
    assert "no benchmark entries of a known kind" in capsys.readouterr().err


def test_a_real_benchmark_file_is_read(tmp_path, capsys):
    """bench-report reads what the benchmarks write now (one iterations case, run for real): the schema of newllm.tools.benchfile follows bench/, not an older file."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "b.json"
    cases = "test_iterations_to_converge and cpu-sequential-untrained-mse-picard-1]"
    # a child of an xdist worker: without the worker's variables, or pytest-benchmark disables itself
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
         str(root / "bench" / "test_iterations.py"), "-k", cases, f"--benchmark-json={out}"],
        cwd=root, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert json.loads(out.read_text())["benchmarks"], "the case ran"
    assert main(["bench-report", str(out), "--markdown", str(tmp_path / "b.md")]) == 0
    assert "sequential" in (tmp_path / "b.md").read_text()
