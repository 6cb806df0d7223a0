"""The run directory (newllm.runs.rundir): every listed file is verified by the reader that uses it, the
manifest is validated like a config, resume checks, symlinks, interrupt/resume messages, the old format."""

from __future__ import annotations

import json
import os
import re
import shlex

import pytest
import torch

from newllm.cli import common
from newllm.cli.main import main
from newllm.phase1 import Phase1Config, train_phase1
from newllm.phase1.cache import load_cache
from newllm.phase2 import Phase2Config, load_phase2, train_phase2
from newllm.runs.checkpoint import CheckpointError, load_checkpoint, load_model
from newllm.runs.manifest import FILE_KINDS, FORMAT, LEGACY_FORMAT
from newllm.runs.rundir import RunDir, RunInterrupted
from tests import rundir_support as R
from tests.helpers import tiny_model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished Phase 1 run (model, optimizer, cache, data) and a Phase 2 run on it (model, optimizer,
    head, cache)."""
    root = tmp_path_factory.mktemp("runs")
    p1 = R.phase1_run(root / "p1")
    p2 = R.phase2_run(p1, root / "p2")
    return {"phase1": p1, "phase2": p2}


def _cli_error(argv, capsys) -> str:
    """Run the CLI; it must exit 2 with exactly one ``error:`` line; return that line."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def _api_error(fn) -> str:
    with pytest.raises(CheckpointError) as info:
        fn()
    return str(info.value)


# --- every file a run directory lists is verified by the reader that uses it ------------------------

# (run, file kind, the real reader of that file) -> the error text
READERS = {
    ("phase1", "model"): lambda d, runs, tmp, cap: _api_error(lambda: load_model(d)),
    ("phase1", "optimizer"): lambda d, runs, tmp, cap: _api_error(
        lambda: train_phase1(
            tiny_model(),
            R.SAMPLES,
            Phase1Config(epochs=2, loop="batched"),
            out_dir=d,
            resume=True,
            progress=False,
            data=R.DATA,
        )  # fmt: skip
    ),
    ("phase1", "cache"): lambda d, runs, tmp, cap: _cli_error(R.phase2_cli(d, tmp / "out"), cap),
    ("phase1", "data"): lambda d, runs, tmp, cap: _cli_error(R.phase2_cli(d, tmp / "out"), cap),
    ("phase2", "model"): lambda d, runs, tmp, cap: _api_error(lambda: load_phase2(d)),
    ("phase2", "head"): lambda d, runs, tmp, cap: _api_error(lambda: load_phase2(d)),
    ("phase2", "optimizer"): lambda d, runs, tmp, cap: _cli_error(
        R.phase2_cli(runs["phase1"], d, "--epochs", "2", "--resume"), cap
    ),
    ("phase2", "cache"): lambda d, runs, tmp, cap: _cli_error(
        R.phase2_cli(runs["phase1"], d, "--epochs", "2", "--resume"), cap
    ),
}
DAMAGE = {"flip a data byte": R.flip_data_byte, "truncate": R.truncate, "delete": R.delete}


def test_the_table_covers_every_file_kind_and_every_listed_file(runs):
    assert {kind for _, kind in READERS} == set(FILE_KINDS)
    for run, d in runs.items():
        assert {k for r, k in READERS if r == run} == set(R.manifest(d)["files"]), run


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
@pytest.mark.parametrize("run, kind", list(READERS), ids=[f"{r}-{k}" for r, k in READERS])
def test_every_listed_file_is_verified_on_read(runs, run, kind, damage, tmp_path, capsys):
    d = R.copy_run(runs[run], tmp_path / "run")
    path = R.listed(d, kind)
    DAMAGE[damage](path)
    msg = READERS[(run, kind)](d, runs, tmp_path, capsys)
    assert path.name in msg, msg
    expect = "is missing" if damage == "delete" else "corrupted or was modified"
    assert expect in msg, msg


@pytest.mark.parametrize(
    "tensor, at", [("contexts", 0.5), ("token_ids", 0.0), ("converged", 0.0), ("iterations", 0.0)]
)
def test_phase2_refuses_a_cache_tampered_in_its_data_region(runs, tensor, at, tmp_path, capsys):
    d = R.copy_run(runs["phase1"], tmp_path / "p1")
    path = d / "cache.safetensors"
    a, b = R.tensor_span(path, tensor)
    R.flip_byte(path, a + int(at * (b - a)))
    err = _cli_error(R.phase2_cli(d, tmp_path / "out"), capsys)
    assert "cache.safetensors" in err and "corrupted or was modified" in err
    assert not (tmp_path / "out").exists()


def test_cache_token_ids_are_checked_against_the_samples_hash(runs, tmp_path, capsys):
    d = R.copy_run(runs["phase1"], tmp_path / "p1")
    path = d / "cache.safetensors"
    a, _ = R.tensor_span(path, "token_ids")
    R.flip_byte(path, a, 0x01)  # token 1 -> 0: still a valid id
    R.relist(d, "cache")  # the manifest vouches for the edited file: only the samples hash can tell
    err = _cli_error(R.phase2_cli(d, tmp_path / "out"), capsys)
    assert "cache.safetensors" in err and "not the run's samples" in err


@pytest.mark.parametrize("where", ["metadata JSON", "header JSON"])
def test_cache_header_damage_names_the_file(runs, where, tmp_path, capsys):
    d = R.copy_run(runs["phase1"], tmp_path / "p1")
    path = d / "cache.safetensors"
    raw = bytearray(path.read_bytes())
    if where == "metadata JSON":  # the cache's own metadata (JSON inside the header): "Expecting ','"
        raw[raw.index(b', \\"context_mode')] = ord(" ")
    else:  # the safetensors header itself
        raw[raw.index(b'"dtype"')] = ord("}")
    path.write_bytes(bytes(raw))
    R.relist(d, "cache")  # past the checksum: the parser must name the file itself
    err = _cli_error(R.phase2_cli(d, tmp_path / "out"), capsys)
    assert f"Phase 1 cache {str(path)!r}" in err, err
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_cache(path)


def test_unlisted_files_are_not_trusted(runs, tmp_path, capsys):
    d = R.copy_run(runs["phase1"], tmp_path / "p1")
    m = R.manifest(d)
    del m["files"]["cache"]  # a run killed after writing its cache, before listing it
    R.write_manifest(d, m)
    err = _cli_error(R.phase2_cli(d, tmp_path / "out"), capsys)
    assert "cache.safetensors" in err and "is not listed" in err and "--resume" in err
    m["files"]["cache"] = R.manifest(runs["phase1"])["files"]["cache"]
    del m["files"]["data"]  # a data.json dropped into a run that did not write it
    R.write_manifest(d, m)
    err = _cli_error(R.phase2_cli(d, tmp_path / "out2"), capsys)
    assert "data.json" in err and "is not listed" in err


# --- manifest fields are validated like configs -----------------------------------------------------


def _set(path, value):
    def edit(m):
        *head, last = path
        for k in head:
            m = m[k]
        if value is _DEL:
            del m[last]
        else:
            m[last] = value

    return edit


_DEL = object()
MANIFEST_CASES = [
    ("negative epoch", _set(["epoch"], -5), r"epoch must be in \[0, 1000000\], got -5"),
    ("epoch as text", _set(["epoch"], "3"), "epoch must be an integer, got '3'"),
    ("epoch as bool", _set(["epoch"], True), "epoch must be an integer, got True"),
    ("huge epoch", _set(["epoch"], 10**7), "epoch must be in"),
    ("unknown format", _set(["format"], "newllm-checkpoint-9"), "format must be 'newllm-run-2'"),
    ("unknown kind", _set(["kind"], "phase3"), "kind must be one of model, phase1, phase2"),
    ("unknown key", _set(["colour"], "blue"), "unknown key.*'colour'"),
    ("missing files", _set(["files"], _DEL), "lacks the key.*'files'"),
    ("files a list", _set(["files"], []), "files must be a JSON object"),
    ("no model file", _set(["files", "model"], _DEL), "names no model file"),
    (
        "unknown file kind",
        _set(["files", "weights"], {"name": "w.safetensors", "sha256": "0" * 64}),
        "unknown file kind",
    ),
    ("bad sha256", _set(["files", "model", "sha256"], "xyz"), "sha256 must be 64 lowercase hex digits"),
    ("negative size", _set(["files", "model", "bytes"], -1), r"bytes must be in \[0, inf\]"),
    ("size missing", _set(["files", "model", "bytes"], _DEL), "bytes must be an integer"),
    ("path escape", _set(["files", "model", "name"], "../model-0001.safetensors"), "unexpected file"),
    ("pickle file", _set(["files", "model", "name"], "model.pt"), "only .safetensors and .json"),
    ("state a list", _set(["state"], []), "state must be a JSON object"),
    ("model_config text", _set(["model_config"], "tiny"), "model_config must be a JSON object"),
    ("model_config key", _set(["model_config", "colour"], 1), "unknown key"),
]
RAW_CASES = [
    ("not UTF-8", b'{"format": "\xff\xfe"}', "not UTF-8 text"),
    ("not JSON", b"{trunc", "not valid JSON"),
    ("NaN constant", b'{"epoch": NaN}', "not valid JSON"),
    ("a list", b"[]", "a manifest is a JSON object"),
]


@pytest.mark.parametrize("case, edit, pattern", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_manifest_fields_are_validated(runs, case, edit, pattern, tmp_path, capsys):
    d = R.copy_run(runs["phase1"], tmp_path / "run")
    m = R.manifest(d)
    edit(m)
    R.write_manifest(d, m)
    with pytest.raises(CheckpointError, match=pattern):
        load_model(d)
    err = _cli_error(["solve", "--checkpoint", d, "--tokens", "2"], capsys)
    assert re.search(pattern, err) and "checkpoint" in err


@pytest.mark.parametrize("case, raw, pattern", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_unreadable_manifests_give_one_line_naming_the_file(runs, case, raw, pattern, tmp_path, capsys):
    d = R.copy_run(runs["phase1"], tmp_path / "run")
    (d / "checkpoint.json").write_bytes(raw)
    err = _cli_error(["solve", "--checkpoint", d, "--tokens", "2"], capsys)
    assert pattern in err and str(d / "checkpoint.json") in err


def test_state_fields_used_on_resume_are_validated(runs, tmp_path):
    d = R.copy_run(runs["phase1"], tmp_path / "run")
    m = R.manifest(d)
    m["state"]["history"] = m["state"]["history"] * 2  # two epochs of history in an epoch-1 checkpoint
    R.write_manifest(d, m)
    cfg = Phase1Config(epochs=2, loop="batched")
    with pytest.raises(CheckpointError, match="state.history must list 1 epoch"):
        train_phase1(tiny_model(), R.SAMPLES, cfg, out_dir=d, resume=True, progress=False, data=R.DATA)
    d2 = R.copy_run(runs["phase2"], tmp_path / "p2")
    m = R.manifest(d2)
    m["state"]["context_mode"] = "sideways"
    R.write_manifest(d2, m)
    with pytest.raises(CheckpointError, match="invalid solver or context_mode"):
        load_phase2(d2)


# --- resume checks (one place: newllm.runs.rundir.check_resume) --------------------------------------

RESUME_CASES = [
    (
        "other settings",
        dict(config=Phase1Config(epochs=2, loop="batched", learning_rate=1e-3)),
        "settings differ",
    ),
    ("other samples", dict(samples=[[9, 9]]), "the training samples differ"),
    ("other data snapshot", dict(data={**R.DATA, "split": "test_sft"}), "data.json differs"),
    ("no data snapshot", dict(data=None), "data.json differs"),
    (
        "fewer epochs",
        dict(config=Phase1Config(epochs=1, loop="batched"), epochs_saved=2),
        "already ran 2 epochs",
    ),
    ("other world size", dict(world_size=2), r"ran with 2 process\(es\), this run has 1"),
    ("old format", dict(legacy=True), "older newllm"),
]


@pytest.mark.parametrize("case, kw, pattern", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_resume_checks(runs, case, kw, pattern, tmp_path):
    d = R.copy_run(runs["phase1"], tmp_path / "run")
    m = R.manifest(d)
    if "epochs_saved" in kw:
        m["epoch"], m["state"]["history"] = 2, m["state"]["history"] * 2
    if "world_size" in kw:
        m["state"]["world_size"] = kw["world_size"]
    if kw.get("legacy"):
        m = _legacy(m)
    R.write_manifest(d, m)
    cfg = kw.get("config", Phase1Config(epochs=2, loop="batched"))
    samples, data = kw.get("samples", R.SAMPLES), kw.get("data", R.DATA)
    with pytest.raises(ValueError, match=pattern):
        train_phase1(tiny_model(), samples, cfg, out_dir=d, resume=True, progress=False, data=data)


def _legacy(m: dict) -> dict:
    """The manifest as newllm wrote it before run directories listed every file (newllm-checkpoint-1)."""
    files = {
        k: {"name": e["name"], "sha256": e["sha256"]}
        for k, e in m["files"].items()
        if k not in ("cache", "data")
    }
    return {
        "format": LEGACY_FORMAT,
        "epoch": m["epoch"],
        "files": files,
        "model_config": m["model_config"],
        "state": m["state"],
    }


def test_old_format_runs_load_their_weights_but_nothing_unverifiable(runs, tmp_path, capsys):
    d = R.copy_run(runs["phase1"], tmp_path / "old")
    R.write_manifest(d, _legacy(R.manifest(d)))
    assert load_checkpoint(d).manifest.legacy  # the weights (checksummed then too) still load
    assert main(["solve", "--checkpoint", str(d), "--tokens", "2", "--json"]) == 0
    capsys.readouterr()
    err = _cli_error(R.phase2_cli(d, tmp_path / "out"), capsys)
    assert "older newllm (manifest format newllm-checkpoint-1)" in err and "train the run again" in err


# --- atomic saves -----------------------------------------------------------------------------------


def test_a_run_directory_holds_exactly_what_its_manifest_lists(tmp_path):
    out = R.phase1_run(tmp_path / "run")
    cfg = Phase1Config(epochs=3, loop="batched")
    train_phase1(tiny_model(), R.SAMPLES, cfg, out_dir=out, resume=True, progress=False, data=R.DATA)
    m = R.manifest(out)
    assert m["format"] == FORMAT and m["kind"] == "phase1" and m["epoch"] == 3
    names = {e["name"] for e in m["files"].values()}
    assert names == {"model-0003.safetensors", "optimizer-0003.safetensors", "cache.safetensors", "data.json"}
    assert {p.name for p in out.iterdir()} == names | {"checkpoint.json", "log.jsonl", ".lock"}
    assert load_cache(out / "cache.safetensors").checkpoint == load_checkpoint(out).tag  # not epoch 1's cache
    events = [json.loads(x)["event"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert events == ["epoch", "cache", "epoch", "epoch", "cache"]


def test_the_same_cache_is_the_same_bytes(tmp_path):
    a, b = R.phase1_run(tmp_path / "a"), R.phase1_run(tmp_path / "b")
    assert (a / "cache.safetensors").read_bytes() == (b / "cache.safetensors").read_bytes()


# --- symbolic links ---------------------------------------------------------------------------------


def test_a_symlinked_run_directory_is_refused_on_read_and_write(runs, tmp_path, capsys):
    link = tmp_path / "latest"
    link.symlink_to(runs["phase1"], target_is_directory=True)
    with pytest.raises(CheckpointError, match="is a symbolic link .*pass that path instead"):
        load_model(link)
    err = _cli_error(["solve", "--checkpoint", link, "--tokens", "2"], capsys)
    assert str(runs["phase1"]) in err  # the message names the real path
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (tmp_path / "out").symlink_to(fresh, target_is_directory=True)
    err = _cli_error(
        ["train", "--tokens", "2", "--dim", "8", "--vocab-size", "64", "--out", tmp_path / "out"], capsys
    )
    assert "symbolic link" in err and list(fresh.iterdir()) == []  # nothing written through the link
    err = _cli_error(R.phase2_cli(runs["phase1"], tmp_path / "out"), capsys)
    assert "symbolic link" in err and list(fresh.iterdir()) == []


def test_listed_files_must_be_regular_files_but_parents_may_be_links(runs, tmp_path):
    d = R.copy_run(runs["phase1"], tmp_path / "run")
    model = R.listed(d, "model")
    real = tmp_path / "elsewhere.safetensors"
    model.rename(real)
    model.symlink_to(real)  # same bytes, same checksum: still refused
    with pytest.raises(CheckpointError, match="is a symbolic link: a run directory holds its files itself"):
        load_model(d)
    parent = tmp_path / "parent-link"
    parent.symlink_to(runs["phase1"].parent, target_is_directory=True)
    assert load_model(parent / runs["phase1"].name) is not None  # only the run directory itself is checked


# --- interrupt and resume messages ------------------------------------------------------------------


def _interrupt_at(epoch):
    def on_epoch(stats):
        if stats.epoch == epoch:
            raise KeyboardInterrupt

    return on_epoch


def test_interrupt_names_the_safe_epoch_and_resume_is_bit_exact(tmp_path):
    cfg = Phase1Config(epochs=3, loop="batched", learning_rate=1e-3)
    full = tiny_model(dropout=0.2)
    train_phase1(full, R.SAMPLES, cfg, out_dir=tmp_path / "full", progress=False)
    out = tmp_path / "cut"
    with pytest.raises(RunInterrupted) as info:
        train_phase1(
            tiny_model(dropout=0.2), R.SAMPLES, cfg, out_dir=out, progress=False, on_epoch=_interrupt_at(2)
        )
    assert (
        info.value.saved_epoch == 2
        and str(info.value) == f"interrupted; epoch 2 of 3 is saved in {str(out)!r}"
    )
    assert RunDir(out).saved_epoch() == 2
    notes: list[str] = []
    fresh = tiny_model(seed=5, dropout=0.2)
    train_phase1(fresh, R.SAMPLES, cfg, out_dir=out, resume=True, progress=False, notice=notes.append)
    assert notes == [f"resuming from epoch 2 of 3 in {str(out)!r}"]
    assert all(
        torch.equal(a, b)
        for a, b in zip(full.state_dict().values(), fresh.state_dict().values(), strict=True)
    )
    events = [json.loads(x)["event"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert events == ["epoch", "epoch", "interrupted", "epoch", "cache"]


def test_interrupt_before_the_first_save(tmp_path, monkeypatch):
    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("newllm.phase1.trainer.train_group", stop)
    with pytest.raises(RunInterrupted, match="interrupted before the first epoch was saved") as info:
        train_phase1(tiny_model(), R.SAMPLES, Phase1Config(epochs=2), out_dir=tmp_path / "r", progress=False)
    assert info.value.saved_epoch is None


def test_phase2_interrupt_and_resume(runs, tmp_path):
    model, cache = load_checkpoint(runs["phase1"]).model, load_cache(runs["phase1"] / "cache.safetensors")
    cfg = Phase2Config(epochs=2, val_fraction=0.4)
    out = tmp_path / "p2"
    with pytest.raises(RunInterrupted, match="epoch 1 of 2 is saved"):
        train_phase2(model, cache, cfg, out_dir=out, progress=False, on_epoch=_interrupt_at(1))
    notes: list[str] = []
    r = train_phase2(model, cache, cfg, out_dir=out, resume=True, progress=False, notice=notes.append)
    assert notes == [f"resuming from epoch 1 of 2 in {str(out)!r}"] and [e.epoch for e in r.epochs] == [1, 2]


def test_cli_interrupt_prints_the_exact_resume_command(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run dir"  # a space: the command must be quoted
    argv = [
        "train",
        "--tokens",
        "3",
        "--dim",
        "8",
        "--vocab-size",
        "64",
        "--epochs",
        "3",
        "--loop",
        "batched",
    ]
    argv += ["--out", str(out), "--quiet", "--json"]
    real, seen = common.print_json, []

    def print_json(obj):  # Ctrl-C while epoch 2 is being reported (its checkpoint is written)
        seen.append(obj)
        if obj.get("epoch") == 2:
            raise KeyboardInterrupt
        real(obj)

    monkeypatch.setattr(common, "print_json", print_json)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"error: interrupted; epoch 2 of 3 is saved in {str(out)!r}"
    )
    command = err.split("continue with: ", 1)[1].strip()
    assert command == "newllm " + shlex.join([*argv, "--resume"])
    monkeypatch.setattr(common, "print_json", real)
    assert main(shlex.split(command)[1:]) == 0
    io = capsys.readouterr()
    assert io.err == f"resuming from epoch 2 of 3 in {str(out)!r}\n"
    assert [json.loads(x).get("epoch") for x in io.out.splitlines()][0] == 3


@pytest.mark.parametrize("exists", [False, True], ids=["missing directory", "empty directory"])
def test_resume_without_a_checkpoint_says_it_starts_fresh(tmp_path, capsys, exists):
    out = tmp_path / "r"
    if exists:
        out.mkdir()
    argv = ["train", "--tokens", "2", "--dim", "8", "--vocab-size", "64", "--epochs", "1"]
    assert main([*argv, "--out", str(out), "--quiet", "--resume"]) == 0
    why = "holds no checkpoint yet (no epoch was saved)" if exists else "did not exist"
    assert capsys.readouterr().err == f"note: --resume: {str(out)!r} {why}; starting at epoch 1 of 1\n"
    assert os.path.isfile(out / "checkpoint.json")
