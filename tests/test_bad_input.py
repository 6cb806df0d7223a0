"""Every kind of bad input, in one table: the API raises a specific error, the CLI exits 2 with one line."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import torch

from newllm import ModelConfig, SolverConfig, build_model, solve
from newllm.cli.main import main
from newllm.phase1 import Phase1Config, train_phase1
from newllm.runs.checkpoint import CheckpointError, load_checkpoint, load_model
from tests.helpers import tiny_config, tiny_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "ok"
    train_phase1(tiny_model(), [[1, 2, 3]], Phase1Config(epochs=1), out_dir=out, progress=False)
    return out


def _copy(src, tmp_path, name, edit):
    d = tmp_path / name
    shutil.copytree(src, d)
    edit(d)
    return d


def _manifest_edit(fn):
    def edit(d):
        m = json.loads((d / "checkpoint.json").read_text())
        fn(m)
        (d / "checkpoint.json").write_text(json.dumps(m))

    return edit


def _truncate(d):
    f = next(d.glob("model-*.safetensors"))
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])


def _flip_byte(d):
    f = next(d.glob("model-*.safetensors"))
    b = bytearray(f.read_bytes())
    b[-5] ^= 0xFF
    f.write_bytes(bytes(b))


def _pickle_with_good_checksum(d):
    import hashlib

    f = next(d.glob("model-*.safetensors"))
    torch.save({"x": torch.zeros(2)}, f)  # a pickle where safetensors is expected
    m = json.loads((d / "checkpoint.json").read_text())
    m["files"]["model"].update(sha256=hashlib.sha256(f.read_bytes()).hexdigest(), bytes=f.stat().st_size)
    (d / "checkpoint.json").write_text(json.dumps(m))


def _pt_file(d):
    torch.save({}, d / "model.pt")
    _manifest_edit(lambda m: m["files"]["model"].update(name="model.pt"))(d)


# (case, callable, exception type, message pattern)
API_CASES = [
    ("id out of range", lambda: solve(tiny_model(), [64]), ValueError, "out of range: expected 0 <= id < 64"),
    ("negative id", lambda: solve(tiny_model(), [3, -1]), ValueError, "token id -1 at position 1"),
    ("non-integer id", lambda: solve(tiny_model(), [1, 2.5]), ValueError, "position 1 holds 2.5"),
    ("float tensor ids", lambda: solve(tiny_model(), torch.tensor([1.0])), ValueError, "must be integers"),
    ("empty ids", lambda: solve(tiny_model(), []), ValueError, "empty"),
    (
        "NaN start context",
        lambda: solve(tiny_model(), [1], init=torch.full((8,), math.nan)),
        ValueError,
        "NaN or inf",
    ),
    (
        "inf start context",
        lambda: solve(tiny_model(), [1], init=torch.full((8,), math.inf)),
        ValueError,
        "NaN or inf",
    ),
    ("wrong start dim", lambda: solve(tiny_model(), [1], init=torch.zeros(9)), ValueError, "context dim 8"),
    ("unknown model key", lambda: ModelConfig.from_dict({"hidden": 3}), ValueError, "unknown key"),
    (
        "wrong type",
        lambda: ModelConfig.from_dict({"embed_dim": "256"}),
        ValueError,
        "embed_dim must be an integer",
    ),
    ("bool as int", lambda: ModelConfig(hidden_dim=True), ValueError, "hidden_dim must be an integer"),
    ("structure entry 0", lambda: ModelConfig(structure=(1, 0)), ValueError, r"structure\[1\]"),
    ("structure not a list", lambda: ModelConfig.from_dict({"structure": "2,2"}), ValueError, "structure"),
    ("threshold 0", lambda: SolverConfig(threshold=0), ValueError, "threshold"),
    ("threshold nan", lambda: SolverConfig(threshold=math.nan), ValueError, "threshold must be finite"),
    ("max_iterations 0", lambda: SolverConfig(max_iterations=0), ValueError, "max_iterations"),
    ("warmup >= max", lambda: SolverConfig(max_iterations=10, warmup=10), ValueError, "warmup must be below"),
    ("damping > 1", lambda: SolverConfig(damping=1.5), ValueError, "damping"),
    ("unknown metric", lambda: SolverConfig(metric="delta"), ValueError, "metric must be one of"),
    ("unknown solver key", lambda: SolverConfig.from_dict({"tol": 1}), ValueError, "unknown key"),
    ("phase1 lr 0", lambda: Phase1Config(learning_rate=0), ValueError, "learning_rate"),
    (
        "phase1 wrong type",
        lambda: Phase1Config.from_dict({"epochs": "3"}),
        ValueError,
        "epochs must be an integer",
    ),
    (
        "no samples",
        lambda: train_phase1(tiny_model(), [], Phase1Config(), progress=False),
        ValueError,
        "at least one sample",
    ),
    (
        "empty sample",
        lambda: train_phase1(tiny_model(), [[]], Phase1Config(), progress=False),
        ValueError,
        "empty",
    ),
]


@pytest.mark.parametrize("case, fn, exc, pattern", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(case, fn, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn()


def test_nan_embedding_is_diverged_not_converged():
    m = tiny_model()
    with torch.no_grad():
        m.token_embedding.weight[5] = math.nan
    r = solve(m, [4, 5])
    assert r.status_names() == ["converged", "nonfinite"]


CKPT_CASES = [
    ("missing dir", lambda d, t: t / "nope", "does not exist"),
    ("not a checkpoint", lambda d, t: t, "no checkpoint.json"),
    ("truncated weights", lambda d, t: _copy(d, t, "trunc", _truncate), "corrupted or was modified"),
    ("tampered weights", lambda d, t: _copy(d, t, "flip", _flip_byte), "corrupted or was modified"),
    (
        "corrupted manifest",
        lambda d, t: _copy(d, t, "man", lambda x: (x / "checkpoint.json").write_text("{")),
        "not valid JSON",
    ),
    (
        "other dims",
        lambda d, t: _copy(d, t, "dims", _manifest_edit(lambda m: m["model_config"].update(hidden_dim=4))),
        "has shape",
    ),
    (
        "unknown config key",
        lambda d, t: _copy(d, t, "key", _manifest_edit(lambda m: m["model_config"].update(colour=1))),
        "unknown key",
    ),
    ("pickle file", lambda d, t: _copy(d, t, "pt", _pt_file), "only .safetensors"),
    (
        "pickle as safetensors",
        lambda d, t: _copy(d, t, "pk", _pickle_with_good_checksum),
        "cannot read tensors",
    ),
]


@pytest.mark.parametrize("case, make, pattern", CKPT_CASES, ids=[c[0] for c in CKPT_CASES])
def test_bad_checkpoints(case, make, pattern, ckpt, tmp_path, capsys):
    path = make(ckpt, tmp_path)
    with pytest.raises(CheckpointError, match=pattern):
        load_model(path)
    assert main(["solve", "--checkpoint", str(path), "--tokens", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(pattern, err) and "Traceback" not in err


def test_checkpoint_config_mismatch(ckpt):
    with pytest.raises(CheckpointError, match="does not match the requested model config"):
        load_checkpoint(ckpt, expect_config=tiny_config(hidden_dim=32))


def test_nan_weights_in_a_checkpoint_are_refused(ckpt, tmp_path):
    from newllm.runs.checkpoint import save_checkpoint

    m = build_model(tiny_config())
    with torch.no_grad():
        m.token_embedding.weight[0, 0] = math.nan
    save_checkpoint(tmp_path / "nan", m, epoch=1)
    with pytest.raises(CheckpointError, match="NaN or inf"):
        load_model(tmp_path / "nan")


CLI_CASES = [
    (["solve", "--tokens", "3", "--token-ids", "60000"], "not allowed with"),
    (["solve", "--token-ids", "60000"], "out of range"),
    (["solve", "--token-ids", "-5"], "out of range"),
    (["solve", "--token-ids", "1,2.5"], "not an integer"),
    (["solve", "--token-ids", ","], "comma-separated"),
    (["solve", "--tokens", "0"], "positive"),
    (["solve", "--tokens", "50259"], "at most"),
    (["solve", "--tokens", "2", "--threshold", "-1"], "threshold"),
    (["solve", "--tokens", "2", "--threshold", "nan"], "threshold must be finite"),
    (["solve", "--tokens", "2", "--warmup", "5", "--max-iterations", "5"], "warmup must be below"),
    (["solve", "--tokens", "2", "--damping", "0"], "damping"),
    (["solve", "--tokens", "2", "--dim", "0"], "embed_dim"),
    (["solve", "--tokens", "2", "--structure", "1,-1"], "structure[1]"),
    (["solve", "--tokens", "2", "--metric", "l1"], "invalid choice"),
    (["solve", "--checkpoint", "/nonexistent", "--tokens", "2"], "does not exist"),
    (["solve", "--checkpoint", "/tmp", "--tokens", "2", "--dim", "8"], "cannot be combined"),
    (["train", "--tokens", "2"], "required: --out"),
    (["train", "--tokens", "2", "--out", "/tmp/x", "--epochs", "0"], "epochs"),
    (["train", "--tokens", "2", "--out", "/tmp/x", "--lr", "-1"], "learning_rate"),
    (["train", "--samples-json", "/nonexistent.json", "--out", "/tmp/x"], "cannot read samples file"),
    (["train", "--tokens", "2", "--out", "/tmp/x", "--loop", "spec", "--distributed"], "torchrun"),
    (["solve", "--tokens"], "expected one argument"),
    (["--version-of-nothing"], "unrecognized"),
]


@pytest.mark.parametrize("argv, needle", CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_bad_input(argv, needle, capsys, monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_samples_files(tmp_path, capsys):
    cases = {"notjson.json": "{", "empty.json": "[]", "flat.json": "[1, 2]", "str.json": '[["a"]]'}
    for name, text in cases.items():
        p = tmp_path / name
        p.write_text(text)
        assert main(["train", "--samples-json", str(p), "--out", str(tmp_path / "o"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "samples file" in err and err.count("\n") == 1, (name, err)
    assert main(["train", "--samples-json", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "cannot read samples file" in capsys.readouterr().err
