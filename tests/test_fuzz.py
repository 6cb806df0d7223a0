"""Fuzz the CLI argument parsing and the config loaders: no input may cause a traceback or a hang.

Each drawn command line runs through ``newllm.cli.main.main`` up to the point where the work would start
(a sentinel stops it there: building a model, loading a run, loading data, plotting), so everything
before -- parsing, bounds, output paths, config validation -- is fuzzed, for every subcommand. The
property: exit 0 (or the sentinel reached), or exit 2 with exactly one ``error:`` line; never a
traceback; nothing written. Hostile *files* (run for real) are in tests/test_fuzz_files.py.
"""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newllm import ModelConfig, SolverConfig
from newllm.cli.clidoc import commands
from newllm.cli.main import COMMANDS, build_parser, main
from newllm.phase1 import Phase1Config
from newllm.tools import benchreport
from tests.cli_support import Outcome, snapshot, written_outside

#: The subcommand modules by name: the CLI's own list.
CMD = {c.NAME: c for c in COMMANDS}


class Reached(Exception):
    """Valid input got as far as building the model."""


FLAGS = [
    "--arch",
    "--structure",
    "--layers",
    "--dim",
    "--vocab-size",
    "--dropout-p",
    "--model-seed",
    "--tokens",
    "--token-ids",
    "--metric",
    "--threshold",
    "--max-iterations",
    "--warmup",
    "--context-mode",
    "--method",
    "--damping",
    "--dropout",
    "--train-mode",
    "--seed",
    "--json",
    "--checkpoint",
    "--loop",
    "--epochs",
    "--lr",
    "--tolerance",
    "--grad-clip",
    "--batch-samples",
    "--jacobian-weight",
    "--out",
    "--resume",
    "--quiet",
    "--samples-json",
    "-h",
    "--",
    "-",
    "--tok",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "sequential",
            "layerwise",
            "mse",
            "l2",
            "rel",
            "carry",
            "anderson",
            "spec",
            "batched",
            "2,2",
            "1,x",
            ",",
            "",
            "nan",
            "inf",
            "-inf",
            "1e309",
            "0",
            "-1",
            "1.5",
            "3",
            "100,200",
            "\x00",
            "é",
        ]
    ),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)
ARGV = st.tuples(
    st.sampled_from(["solve", "train", "nope", "--help"]),
    st.lists(st.one_of(st.sampled_from(FLAGS), VALUES), max_size=12),
).map(lambda t: [t[0], *t[1]])

#: 4x the profile's example count (ci: 100, thorough: 4000): these examples are cheap.
FUZZ = settings(
    max_examples=4 * settings.default.max_examples,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def stop_before_work(monkeypatch, tmp_path):
    def reached(*a, **k):
        raise Reached

    monkeypatch.setattr(CMD["solve"], "build_model", reached)
    monkeypatch.setattr(CMD["solve"].common, "model_from_checkpoint", reached)
    monkeypatch.setattr(CMD["train"], "build_model", reached)
    monkeypatch.chdir(tmp_path)
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)


@FUZZ
@given(argv=ARGV)
def test_cli_never_tracebacks(stop_before_work, argv):
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(argv)
    except Reached:
        return
    except SystemExit as exc:  # only --help / -h may exit, and successfully
        assert exc.code == 0, (argv, err.getvalue())
        return
    assert code == 2, (argv, code)
    msg = err.getvalue()
    assert msg.startswith("error: ") and msg.count("\n") == 1 and "Traceback" not in msg, (argv, msg)


JSONISH = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True), st.text(max_size=8)
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.parametrize("cls", [ModelConfig, SolverConfig, Phase1Config])
@FUZZ
@given(
    data=st.one_of(
        JSONISH,
        st.dictionaries(
            st.sampled_from(
                [
                    "arch",
                    "structure",
                    "num_layers",
                    "embed_dim",
                    "dropout",
                    "threshold",
                    "metric",
                    "warmup",
                    "max_iterations",
                    "context_mode",
                    "epochs",
                    "learning_rate",
                    "loop",
                    "tolerance",
                    "grad_clip",
                    "seed",
                    "context_clamp",
                    "damping",
                    "jacobian_weight",
                    "stall_window",
                    "bogus",
                ]
            ),
            JSONISH,
            max_size=5,
        ),
    )
)
def test_config_loaders_raise_only_value_error(cls, data):
    try:
        cfg = cls.from_dict(data)
    except ValueError as exc:
        assert str(exc)
        return
    assert cls.from_dict(cfg.to_dict()) == cfg  # whatever loads round-trips


@FUZZ
@given(text=st.one_of(st.text(max_size=40), JSONISH.map(json.dumps)))
def test_config_files_raise_only_value_error(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("cfg") / "c.json"
    p.write_text(text)
    try:
        ModelConfig.from_json(p)
    except ValueError:
        pass


#: Every subcommand (as argv words) with the option strings it takes, read from the parser.
SUBCOMMANDS = {
    tuple(prog.split()[1:]): sorted({o for a in p._actions for o in a.option_strings if o.startswith("--")})
    for prog, p in commands(build_parser())
    if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)
}
HOSTILE = st.one_of(
    VALUES,
    st.sampled_from(
        [
            "9999999999999999999999",
            "-9999999999999999999999",
            "1e-400",
            "0x10",
            "1_000",
            "none",
            "caf\udce9",  # a non-UTF-8 byte, as Python hands it over
            "FILE",
            "DIR",
            "FILE/sub",
            "missing/x.json",
            "/dev/zero",
            "out.png",
            "out.md",
            "bench.json",
            "ultrachat",
            "os:getcwd",
            "FILE:x",
            "base.json",
        ]
    ),
)


@st.composite
def any_command(draw):
    words = draw(st.sampled_from(sorted(SUBCOMMANDS)))
    flags = SUBCOMMANDS[words]
    rest = draw(st.lists(st.one_of(st.sampled_from(flags or ["--json"]), HOSTILE), max_size=10))
    return [*words, *rest]


@pytest.fixture
def stop_every_command(monkeypatch, tmp_path):
    """Sentinels where each subcommand's work would begin; a scratch directory with a file, a directory
    and a benchmark JSON file to be named by the drawn arguments."""
    import newllm.data as data
    import newllm.recipes.bench as recipes_bench

    def reached(*a, **k):
        raise Reached

    for mod, name in [
        (CMD["solve"], "build_model"),
        (CMD["train"], "build_model"),
        (CMD["contraction"], "build_model"),
        (CMD["verify"], "build_model"),
        (CMD["verify"], "load_factory"),
        (CMD["solve"].common, "model_from_checkpoint"),
        (CMD["phase2"], "load_checkpoint"),
        (CMD["generate"], "load_phase2"),
        (CMD["reproduce"], "run_reproduction"),
        (data, "load_samples"),
        (recipes_bench, "run_benchmark"),
        (benchreport, "plot"),
    ]:
        monkeypatch.setattr(mod, name, reached)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "DIR").mkdir()
    (tmp_path / "bench.json").write_text(
        json.dumps({"benchmarks": [{"name": "t", "extra_info": {"kind": "loop_speedup", "device": "cpu",
                    "arch": "mixed", "tokens": 8, "iterations": 2, "speedup": 3.0}}]})
    )  # fmt: skip
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path


#: Flags that name what a command writes (everything else must stay untouched).
OUTPUT_FLAGS = ("--out", "--markdown", "--plot", "--write-baseline", "--model-cache")


@FUZZ
@given(argv=any_command())
def test_every_subcommand_never_tracebacks(stop_every_command, argv):
    before = snapshot(stop_every_command)
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(argv)
    except Reached:
        code = 0
    except SystemExit as exc:  # only --help / -h may exit, and successfully
        assert exc.code == 0, (argv, err.getvalue())
        code = 0
    Outcome(argv, code, out.getvalue(), err.getvalue()).check()
    outputs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in OUTPUT_FLAGS]
    assert not written_outside(before, snapshot(stop_every_command), outputs), argv
