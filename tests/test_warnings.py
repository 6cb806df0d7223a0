"""Section 3 of issue 15, silent surprises: a ``warning:`` line for every flag that does nothing in its
context (and none where it does something), the collapse named in train's verdict, and the Phase 2
two-conversation rule as one clear error."""

from __future__ import annotations

import json

import pytest

from newllm.cli import args as A
from newllm.cli.main import build_parser
from newllm.cli.train_cmd import verdict
from newllm.phase1 import Phase1Config
from newllm.phase1.trainer import EpochStats
from newllm.phase2.split import check_conversations, split_samples
from tests.cli_support import run

# (argv, flags warned about): parsed, then the command's IGNORED rules applied (nothing runs)
CASES = [
    (["train", "--tokens", "2", "--out", "o", "--samples", "5"], ["--samples"]),
    (
        ["train", "--tokens", "2", "--out", "o", "--max-length", "9", "--split", "x"],
        ["--max-length", "--split"],
    ),
    (["train", "--data", "ultrachat", "--out", "o", "--samples", "5", "--max-length", "9"], []),
    (["train", "--tokens", "2", "--out", "o", "--samples", "10"], ["--samples"]),  # the default value, given
    (["train", "--tokens", "2", "--out", "o", "--batch-samples", "4"], ["--batch-samples"]),
    (["train", "--tokens", "2", "--out", "o", "--batch-samples", "4", "--loop", "batched"], []),
    (
        ["generate", "--checkpoint", "r", "--prompt", "p", "--greedy", "--temperature", "0.5"],
        ["--temperature"],
    ),
    (["generate", "--checkpoint", "r", "--prompt", "p", "--greedy", "--seed", "3"], ["--seed"]),
    (["generate", "--checkpoint", "r", "--prompt", "p", "--temperature", "0.5", "--seed", "3"], []),
    (["solve", "--checkpoint", "r", "--tokens", "2", "--seed", "3"], ["--seed"]),
    (["solve", "--checkpoint", "r", "--tokens", "2", "--seed", "3", "--train-mode"], []),
    (["solve", "--tokens", "2", "--seed", "3"], []),
    (["data", "info", "--seed", "3"], ["--seed"]),
    (["data", "info", "--seed", "3", "--samples", "5"], []),
    (["data", "show", "--seed", "3"], []),
]


@pytest.mark.parametrize("argv, warned", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_flags_that_do_nothing_are_named(argv, warned, capsys):
    args = build_parser().parse_args(argv)
    assert A.warn_ignored(args, args._ignored) == warned
    err = capsys.readouterr().err
    assert err.count("warning: ") == len(warned)
    for flag in warned:
        assert f"warning: {flag} does nothing " in err


def test_deprecated_aliases_count_as_given(capsys):
    args = build_parser().parse_args(["train", "--tokens", "2", "--out", "o", "--tolerance", "0.1"])
    assert A.given(args, "threshold") and args.threshold == 0.1
    assert "warning: --tolerance is deprecated" in capsys.readouterr().err


def test_a_warning_then_the_work(tmp_path):
    o = run(
        ["solve", "--tokens", "2", "--dim", "8", "--vocab-size", "64", "--model-seed", "1", "--seed", "2"]
    )
    assert o.code == 0 and "warning" not in o.err
    out = tmp_path / "o"
    o = run(["train", "--tokens", "2", "--dim", "8", "--vocab-size", "64", "--epochs", "1", "--out", out])
    assert o.code == 0 and "warning" not in o.err
    again = ["train", "--tokens", "2", "--dim", "8", "--vocab-size", "64", "--epochs", "1", "--out", out]
    o = run([*again, "--resume", "--model-seed", "5", "--quiet"])
    assert o.code == 0 and "warning: --model-seed does nothing with --resume of a saved run" in o.err


def test_split_of_a_single_file_source(tmp_path, monkeypatch, data_cache):
    monkeypatch.setenv("NEWLLM_CACHE", str(data_cache))
    f = tmp_path / "a.txt"
    f.write_text("one\n\ntwo\n")
    o = run(["data", "info", "--source", f, "--split", "test", "--quiet"])
    assert o.code == 0 and "warning: --split 'test' does nothing with the single-file source" in o.err
    o = run(["data", "info", "--source", f, "--quiet"])
    assert o.code == 0 and "warning" not in o.err


def _stats(rate: float, collapsed: bool) -> EpochStats:
    return EpochStats(
        epoch=3, tokens=100, converged=int(100 * rate), rate=rate, mean_iterations=2.0, mean_loss=1e-3,
        optimizer_steps=10, seconds=1.0, success=rate >= 0.95 and not collapsed, collapsed=collapsed,
        context_rms=0.02 if collapsed else 1.0, effective_rank=1.0, max_cosine=0.9999,
    )  # fmt: skip


VERDICTS = [
    (1.0, False, ["met"], ["NOT", "COLLAPSED"]),
    (1.0, True, ["NOT met", "COLLAPSED at rate 100.0%", "context rms 0.02"], ["is below"]),
    (0.5, False, ["NOT met", "rate 50.0% is below 95%"], ["COLLAPSED"]),
    (0.5, True, ["rate 50.0% is below 95%", "COLLAPSED"], []),
]


@pytest.mark.parametrize("rate, collapsed, has, lacks", VERDICTS)
def test_verdict_names_the_collapse(rate, collapsed, has, lacks):
    line = verdict(_stats(rate, collapsed), Phase1Config())
    for s in has:
        assert s in line, line
    for s in lacks:
        assert s not in line, line


def test_phase2_needs_two_conversations(tmp_path):
    (tmp_path / "one.json").write_text(json.dumps([[1, 2, 3, 4]]))
    argv = [
        "train",
        "--samples-json",
        tmp_path / "one.json",
        "--dim",
        "8",
        "--vocab-size",
        "32",
        "--epochs",
        "1",
    ]
    assert run([*argv, "--out", tmp_path / "p1", "--quiet"]).code == 0
    run(["phase2", "--checkpoint", tmp_path / "p1", "--out", tmp_path / "p2"]).error(
        "Phase 2 needs at least two conversations", "holds 1 sample(s) of 1 distinct", str(tmp_path / "p1")
    )
    assert not (tmp_path / "p2").exists()
    with pytest.raises(ValueError, match="at least two conversations"):
        split_samples(["a", "a", "a"], 0.5, 0)
    check_conversations(["a", "b"])
