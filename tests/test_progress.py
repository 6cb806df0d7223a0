"""Section 3 of issue 15, long work: every command that can take more than ~2 s shows progress on stderr
through the one helper (newllm.cli.progress.Progress): quiet with --quiet, never on stdout, and
``generate`` streams its text as it comes."""

from __future__ import annotations

import json
import time

import pytest

from newllm.cli import progress as P
from tests.cli_support import run
from tests.data_support import require_data_packages

require_data_packages()

GPT2_SAMPLES = [[464, 3290, 318, 257, 922], [40, 588, 3797, 13], [15496, 995, 11, 2159, 0]]


@pytest.fixture
def shown_at_once(monkeypatch):
    """Progress draws from the first call (tests run faster than the 1 s delay)."""
    monkeypatch.setattr(P, "DELAY", 0.0)
    monkeypatch.setattr(P, "TICK_FILE", 0.05)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny Phase 1 run on GPT-2 ids (vocabulary 50259, dim 8) and a Phase 2 run on it."""
    d = tmp_path_factory.mktemp("progress")
    (d / "s.json").write_text(json.dumps(GPT2_SAMPLES))
    argv = ["train", "--samples-json", d / "s.json", "--out", d / "p1", "--dim", "8", "--epochs", "1"]
    assert run([*argv, "--quiet"]).code == 0
    assert run(["phase2", "--checkpoint", d / "p1", "--out", d / "p2", "--epochs", "1", "--quiet"]).code == 0
    return d


def _bench(tmp_path):
    counts = dict(
        median_iterations=3.0, p90_iterations=4.0, max_iterations=5.0, mean_iterations=3.0, rate=1.0
    )
    extra = dict(kind="iterations", arch="layerwise", state="untrained", tolerance="mse0.01", method="picard")
    extra.update(tokens=8, device="cpu", counts=counts)
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"benchmarks": [{"name": "t", "extra_info": extra}]}))
    return f


TINY = ["--dim", "8", "--vocab-size", "64"]
# (case, argv builder (runs dir, tmp dir), what stderr shows while it works, whether --json gives JSON lines)
COMMANDS = [
    ("solve", lambda r, t: ["solve", "--tokens", "3", *TINY], ["solve: 3 tokens"]),
    (
        "contraction",
        lambda r, t: ["contraction", "--tokens", "2", *TINY, "--picard-iterations", "20", "--pairs", "1"],
        ["contraction: picard", "contraction: anderson", "contraction: jacobian", "contraction: pair ratio"],
    ),
    (
        "data info",
        lambda r, t: ["data", "info", "--source", r / "corpus.jsonl", "--max-length", "16"],
        ["data: load", "data: encode"],
    ),
    (
        "train --data",
        lambda r, t: (
            ["train", "--data", r / "corpus.jsonl", "--samples", "2", "--max-length", "8"]
            + ["--dim", "8", "--epochs", "1", "--out", t / "o"]
        ),
        ["data: encode", "phase1 epoch 1/1"],
    ),
    (
        "phase2 carry cache",
        lambda r, t: [
            "phase2",
            "--checkpoint",
            r / "p1",
            "--cache-mode",
            "carry",
            "--epochs",
            "1",
            "--out",
            t / "o",
        ],
        ["phase2: carry", "3/3"],
    ),
    (
        "generate --json",
        lambda r, t: ["generate", "--checkpoint", r / "p2", "--prompt", "The", "--max-new-tokens", "4"],
        ["generate: tokens", "4/4"],
    ),
    (
        "verify",
        lambda r, t: ["verify", *TINY, "--tokens", "4", "--checks", "finite,deterministic"],
        ["verify: finite", "verify: deterministic", "1/2"],
    ),
    (
        "bench-report --plot",
        lambda r, t: ["bench-report", _bench(t), "--plot", t / "p.png"],
        ["bench-report: plot"],
    ),
]


@pytest.fixture(scope="module")
def corpus(runs):
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"hello {i}"},
                {"role": "assistant", "content": "hi there"},
            ]
        }
        for i in range(6)
    ]
    (runs / "corpus.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return runs


@pytest.mark.parametrize("case, argv, shown", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_progress_on_stderr_only(case, argv, shown, corpus, tmp_path, shown_at_once, monkeypatch, data_cache):
    monkeypatch.setenv("NEWLLM_CACHE", str(data_cache))
    base = argv(corpus, tmp_path)
    json_flag = [] if case == "bench-report --plot" else ["--json"]
    o = run([*base, *json_flag])
    o.check()
    assert o.code == 0, o.err
    for s in shown:
        assert s in o.err, (s, o.err)
    if json_flag:  # stdout holds JSON lines only
        assert all(json.loads(line) for line in o.out.splitlines())
    for s in shown:
        assert s not in o.out
    # --quiet: none of it (a fresh --out where the command writes one)
    quiet = [tmp_path / "o2" if a == tmp_path / "o" else a for a in base]
    q = run([*quiet, *json_flag, "--quiet"])
    assert q.code == 0 and not any(s in q.err for s in shown), q.err


def test_the_clock_moves_during_one_slow_step(shown_at_once, monkeypatch, capsys):
    monkeypatch.setattr(P, "TICK", 0.02)
    monkeypatch.setattr(P, "TICK_FILE", 0.02)
    with P.Progress("work") as p:
        p(0, None, "slow step")
        time.sleep(0.3)
        p(1, 2, "counted")
    err = capsys.readouterr().err
    assert err.count("work: slow step [") >= 3, err  # redrawn by the ticker while nothing reported
    assert "work: counted:  50%" in err and err.endswith("\r")  # the line is cleared at the end


def test_nothing_when_disabled_or_quick(monkeypatch, capsys):
    with P.Progress("work", enabled=False) as p:
        p(0, None, "x")
    with P.Progress("work") as p:  # DELAY not yet passed: quick work stays silent
        p(0, 3, "x")
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_generate_streams_text(runs, tokenizer):
    """TextStream writes each new piece as soon as its characters are whole; the result is the decode."""
    from newllm.cli.generate_cmd import TextStream

    class Sink:
        def __init__(self):
            self.writes: list[str] = []

        def write(self, s):
            self.writes.append(s)

        def flush(self):
            pass

    ids = tokenizer.encode(" caf\u00e9 \U0001f600 ok", add_special_tokens=False)
    sink = Sink()
    stream = TextStream(tokenizer, sink)
    for t in ids:
        stream(t)
    text = stream.close()
    assert text == tokenizer.decode(ids) and "".join(sink.writes) == text + "\n"
    assert len([w for w in sink.writes if w]) > 3  # written piece by piece, not at the end
    assert not any("\ufffd" in w for w in sink.writes)  # a split character waits for its last byte


def test_generate_text_equals_json_text(runs):
    argv = ["generate", "--checkpoint", runs / "p2", "--prompt", "The cat", "--max-new-tokens", "6"]
    text = run(argv)
    js = run([*argv, "--json", "--quiet"])
    assert text.code == js.code == 0
    assert text.out == json.loads(js.out)["text"] + "\n"
