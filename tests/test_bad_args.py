"""Section 2 of issue 15, arguments: numbers bounded at the parser (every numeric flag of every
subcommand, found by walking the parser), output paths checked before any work, arguments that are
not UTF-8, a model or Jacobian too large for memory; each one ``error:`` line naming the flag/file, the
value and what was expected."""

from __future__ import annotations

import argparse

import pytest

from newllm import ModelConfig, SolverConfig
from newllm.cli.clidoc import commands
from newllm.cli.main import UsageError, build_parser
from newllm.phase1 import Phase1Config
from newllm.phase2 import Phase2Config
from newllm.tokens import as_token_tensor
from tests.cli_support import run

#: The smallest valid command line of each subcommand (the flag under test is appended).
MINIMAL = {
    "newllm solve": ["solve", "--tokens", "2"],
    "newllm train": ["train", "--tokens", "2", "--out", "OUT"],
    "newllm data info": ["data", "info"],
    "newllm data show": ["data", "show"],
    "newllm contraction": ["contraction", "--tokens", "2"],
    "newllm phase2": ["phase2", "--checkpoint", "RUN"],
    "newllm generate": ["generate", "--checkpoint", "RUN", "--prompt", "hi"],
    "newllm reproduce": ["reproduce"],
    "newllm bench-report": ["bench-report", "B.json"],
    "newllm verify": ["verify"],
    "newllm recipes": ["recipes"],
}


def numeric_flags():
    """``(command, flag, action)`` for every option of every subcommand whose type takes a number."""
    out = []
    for prog, parser in commands(build_parser()):
        for a in parser._actions:
            if a.option_strings and a.type is not None and a.help != argparse.SUPPRESS:
                if hasattr(a.type, "bounds"):
                    out.append((prog, max(a.option_strings, key=len), a))
    return out


NUMERIC = numeric_flags()


def test_no_flag_takes_an_unbounded_number():
    """Every typed option has a bounded type (or takes text/paths): plain int/float would let 10**30 or
    nan through to torch."""
    plain = [
        f"{prog} {max(a.option_strings, key=len)}"
        for prog, parser in commands(build_parser())
        for a in parser._actions
        if a.type in (int, float)
    ]
    assert not plain, plain
    assert len(NUMERIC) >= 40  # the walk found the flags (solve, train, contraction, phase2, ... )
    assert {p for p, _, _ in NUMERIC} == set(MINIMAL) - {"newllm bench-report"}


def _argv(prog: str, flag: str, value: str) -> list[str]:
    base = list(MINIMAL[prog])
    if flag in ("--tokens", "--token-ids") and "--tokens" in base:  # one of the two: drop the default
        i = base.index("--tokens")
        del base[i : i + 2]
    return [*base, flag, value]


def _outside(action) -> list[str]:
    """Values the flag must refuse: just past each finite end, 10**23 past an upper one, and garbage."""
    lo, hi = action.type.bounds
    vals = ["x", "nan", "inf"]
    if hi is not None:
        vals += [str(hi + 1), "99999999999999999999999"]
    if lo is not None:
        vals.append(str(lo - 1))
    return vals


@pytest.mark.parametrize(
    "prog, flag, action", NUMERIC, ids=[f"{p.removeprefix('newllm ')} {f}" for p, f, _ in NUMERIC]
)
def test_every_numeric_flag_states_its_bound(prog, flag, action):
    """Values outside the flag's bound: refused by the parser (before any file is read or model built)
    with one line naming the flag, the value and the bound."""
    for value in _outside(action):
        with pytest.raises(UsageError) as info:
            build_parser().parse_args(_argv(prog, flag, value))
        line = str(info.value)
        assert f"argument {flag}" in line and value in line, line
        assert "[" in line or "(" in line, line  # the bound is stated


def test_a_bound_reaches_the_user_as_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(["generate", "--checkpoint", "RUN", "--prompt", "hi", "--max-new-tokens", "10001"]).error(
        "argument --max-new-tokens: expected an integer in [0, 10000], got 10001"
    )
    assert not list(tmp_path.iterdir())


CONFIG_OF = {
    "--max-iterations": [
        ("newllm solve", SolverConfig, "max_iterations"),
        ("newllm train", Phase1Config, "max_iterations"),
        ("newllm verify", SolverConfig, "max_iterations"),
    ],
    "--epochs": [("newllm train", Phase1Config, "epochs"), ("newllm phase2", Phase2Config, "epochs")],
    "--batch-samples": [("newllm train", Phase1Config, "batch_samples")],
    "--batch-size": [("newllm phase2", Phase2Config, "batch_size")],
    "--lr": [
        ("newllm train", Phase1Config, "learning_rate"),
        ("newllm phase2", Phase2Config, "learning_rate"),
    ],
    "--seed": [("newllm train", Phase1Config, "seed"), ("newllm phase2", Phase2Config, "seed")],
    "--dim": [(p, ModelConfig, "embed_dim") for p in ("newllm solve", "newllm train", "newllm contraction")],
    "--vocab-size": [("newllm solve", ModelConfig, "vocab_size")],
    "--layers": [("newllm solve", ModelConfig, "num_layers")],
    "--damping": [("newllm solve", SolverConfig, "damping")],
}


def _extremes(t) -> list[float]:
    """The most extreme values a bounded type accepts (just inside an open end)."""
    lo, hi = t.bounds
    lo_open, hi_open = getattr(t, "open_ends", (False, False))
    out = []
    if lo is not None:
        out.append(lo + 1e-9 if lo_open else lo)
    if hi is not None:
        out.append(hi - 1e-9 if hi_open else hi)
    return out


@pytest.mark.parametrize("flag", sorted(CONFIG_OF))
def test_parser_bounds_fit_the_configs(flag):
    """What the parser accepts at its extremes, the config accepts too (no second, different message)."""
    for prog, cls, field in CONFIG_OF[flag]:
        action = next(a for p, f, a in NUMERIC if p == prog and f == flag)
        values = _extremes(action.type)
        assert values
        for v in values:
            cls(**{field: v})


def test_token_ids_beyond_int64_in_the_api():
    with pytest.raises(ValueError, match="out of range: expected 0 <= id < 64"):
        as_token_tensor([1, 9999999999999999999999], 64)


def test_output_paths(tmp_path):
    f = tmp_path / "afile"
    f.write_text("keep me")
    cases = [
        (["train", "--tokens", "2", "--out", f], "argument --out: '" + str(f) + "' is a file"),
        (["train", "--tokens", "2", "--out", f / "sub"], "is a file, not a directory"),
        (["phase2", "--checkpoint", tmp_path, "--out", f], "argument --out"),
        (["reproduce", "--out", f], "argument --out"),
        (["bench-report", "x.json", "--markdown", tmp_path], "is a directory: expected a file path"),
        (["bench-report", "x.json", "--markdown", f / "r.md"], "is a file, not a directory"),
        (["bench-report", "x.json", "--plot", f / "p.png"], "is a file, not a directory"),
        (["bench-report", "x.json", "--plot", "out.pdf"], "ending in .png"),
    ]
    for argv, needle in cases:
        run(argv).error(needle)
    assert f.read_text() == "keep me"


@pytest.mark.parametrize("position", [1, 3, -1])
def test_arguments_that_are_not_utf8(position):
    """Bytes that are not UTF-8 reach Python as lone surrogates; any argument holding one is refused."""
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    argv = ["generate", "--checkpoint", "RUN", "--prompt", "hi"]
    argv[position] = bad
    run(argv).error("is not UTF-8 text", "caf\\\\xe9")


def test_version(capsys):
    from newllm import __version__

    o = run(["--version"])
    assert o.code == 0 and o.out.strip() == f"newllm {__version__}"


@pytest.mark.parametrize(
    "kw",
    [{}, {"structure": (2, 3)}, {"arch": "sequential", "num_layers": 3}, {"embed_dim": 4, "hidden_dim": 6}],
)
def test_parameter_count_matches_the_model(kw):
    from newllm import build_model
    from newllm.cli.common import model_parameters
    from tests.helpers import tiny_config

    cfg = tiny_config(**kw)
    assert model_parameters(cfg) == sum(p.numel() for p in build_model(cfg).parameters())


def test_model_too_large_for_memory():
    """Refused from the parameter count, before any allocation."""
    run(["solve", "--tokens", "2", "--vocab-size", "10000000", "--dim", "65536"]).error(
        "parameters", "GiB", "--dim"
    )
    run(["solve", "--tokens", "2", "--structure", "64,64"]).error("128 layers in total: at most 64")


def test_exact_jacobians_too_large_for_memory():
    from newllm.cli.contraction_cmd import check_jacobian_memory

    with pytest.raises(ValueError, match="--spectral iterative"):
        check_jacobian_memory("auto", 10**6, 256)
    check_jacobian_memory("iterative", 10**6, 256)  # no Jacobian: no bound
    check_jacobian_memory("auto", 10**6, 1024)  # auto is iterative above 512


def test_an_error_line_shows_control_characters_escaped(capsys):
    """Text in an error that is not shown through repr (an exception's message) cannot start a second
    line or drive the terminal: control characters are shown escaped."""
    from newllm.cli.main import _error

    assert _error("bad value 'x\x1b[2J'\nerror: forged") == 2
    assert capsys.readouterr().err == "error: bad value 'x\\x1b[2J'\\nerror: forged\n"
