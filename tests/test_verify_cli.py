"""``newllm verify``: a table or one JSON object, exit 0 / 1 / 2, ``--model MODULE:FACTORY`` and the
baseline round trip. (On a trained checkpoint: properties/test_check_model_trained.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from newllm.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ["verify", "--arch", "layerwise", "--dim", "16", "--vocab-size", "64"]
FAST = ["--checks", "finite,deterministic,convergence,collapse"]


def run(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_builtin_model_verifies_as_json(capsys):
    rc, out, err = run(capsys, [*BUILTIN, *FAST, "--warmup", "10", "--json"])
    assert rc == 0, err
    o = json.loads(out)
    assert o["passed"] is True and o["failed"] == [] and o["source"]["source"] == "built-in"
    assert [c["name"] for c in o["checks"]] == ["finite", "deterministic", "convergence", "collapse"]
    assert o["solver"]["warmup"] == 10 and o["token_ids"] == list(range(3, 49, 3))


def test_the_table_names_every_check_and_the_verdict(capsys):
    rc, out, _ = run(capsys, [*BUILTIN, "--checks", "finite,device_parity", "--token-ids", "1,2,3"])
    lines = out.splitlines()
    assert rc == 0 and lines[0].startswith("newllm.model.CVFPModel (built-in): context dim 16")
    assert lines[1].split() == ["check", "status", "seconds", "detail"]
    assert lines[2].startswith("finite") and "passed" in lines[2] and lines[3].startswith("device_parity")
    assert lines[-1].startswith("PASSED")


def test_a_failed_check_exits_1(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc, out, _ = run(
        capsys, ["verify", "--model", "tests.broken_models:nan_tokens", "--checks", "finite", "--json"]
    )
    o = json.loads(out)
    assert (
        rc == 1
        and o["failed"] == ["finite"]
        and o["source"] == {"source": "factory", "factory": "tests.broken_models:nan_tokens"}
    )
    assert "token 3 (position 0), token 33 (position 10)" in o["checks"][0]["detail"]


def test_the_example_model_verifies_by_factory(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc, out, err = run(capsys, ["verify", "--model", "examples.gru_model:build", *FAST, "--json"])
    assert rc == 0, err
    assert json.loads(out)["model"]["class"] == "examples.gru_model.GRUContextModel"


def test_write_baseline_then_gate_against_it(capsys, tmp_path):
    base = tmp_path / "base.json"
    argv = [*BUILTIN, "--checks", "convergence", "--max-iterations", "30"]
    rc, out, _ = run(capsys, [*argv, "--write-baseline", str(base)])
    assert rc == 0 and f"baseline written to {base}" in out
    saved = json.loads(base.read_text())
    assert saved["format"] == "newllm-matrix/1" and saved["configurations"]["verify"]["tokens"] == 16
    assert saved["settings"]["token_ids"] == list(range(3, 49, 3))
    rc, out, _ = run(capsys, [*argv, "--baseline", str(base), "--json"])
    conv = json.loads(out)["checks"][0]
    assert rc == 0 and conv["numbers"]["baseline"]["findings"] == []
    rc, out, _ = run(capsys, [*argv, "--baseline", str(base), "--json", "--dropout-p", "0.0", "--seed", "3"])
    assert rc in (0, 1)  # another model under the same settings is compared, whatever the verdict


@pytest.mark.parametrize(
    "argv, message",
    [
        (["verify"], "give exactly one model source: .* got none"),
        (["verify", "--arch", "layerwise", "--model", "x:y"], "got --model and model flags"),
        (["verify", "--model", "nocolon"], "--model must be MODULE:FACTORY"),
        (["verify", "--model", "no_such_module_xyz:build"], "cannot import module 'no_such_module_xyz'"),
        (
            ["verify", "--model", "examples.gru_model:nope"],
            "module 'examples.gru_model' has no callable 'nope'",
        ),
        (
            ["verify", "--model", "tests.helpers:tiny_config"],
            "ModelConfig does not satisfy the CVFP model protocol",
        ),
        ([*BUILTIN, "--checks", "finite,bogus"], "unknown check 'bogus'"),
        ([*BUILTIN, "--token-ids", "1,99"], "token id 99 at position 1 is out of range"),
        (
            [*BUILTIN, "--baseline", "/nonexistent/base.json"],
            "baseline: cannot read '/nonexistent/base.json'",
        ),
        (
            [*BUILTIN, "--checks", "finite", "--write-baseline", "b.json"],
            "--write-baseline needs the convergence",
        ),
        ([*BUILTIN, "--threshold", "-1"], "threshold"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(capsys, monkeypatch, argv, message):
    monkeypatch.chdir(ROOT)
    rc, out, err = run(capsys, argv)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert re.search(message, err), err


def test_a_baseline_of_other_settings_is_bad_input(capsys, tmp_path):
    base = tmp_path / "base.json"
    assert (
        run(
            capsys,
            [*BUILTIN, "--checks", "convergence", "--max-iterations", "30", "--write-baseline", str(base)],
        )[0]
        == 0
    )
    rc, _, err = run(capsys, [*BUILTIN, "--checks", "convergence", "--baseline", str(base)])
    assert rc == 2 and "other solver settings: max_iterations 30 (baseline) vs 200" in err
    base.write_text("{not json")
    rc, _, err = run(capsys, [*BUILTIN, "--checks", "convergence", "--baseline", str(base)])
    assert rc == 2 and "is not valid JSON" in err


def test_every_json_key_is_documented(capsys, tmp_path):
    """docs/verify.md's JSON table lists exactly the top-level keys of ``newllm verify --json``."""
    text = (ROOT / "docs" / "verify.md").read_text().split("### JSON", 1)[1].split("\n\n`numbers`", 1)[0]
    documented = set()
    for row in re.findall(r"^\| (`[^|]+`) \|", text, flags=re.M):
        documented |= set(re.findall(r"`([a-z_]+)`", row))
    base = tmp_path / "b.json"
    rc, out, _ = run(capsys, [*BUILTIN, "--checks", "convergence", "--write-baseline", str(base), "--json"])
    assert rc == 0 and set(json.loads(out)) == documented
