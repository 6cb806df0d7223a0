"""Section 2 of issue 15, files: every hostile input file is one ``error:`` line naming the file and what
was expected, exit 2, no traceback, nothing written (``--out`` not created, ``--markdown`` not written).

One table per kind of file the tool reads: local data sources (checked before ``datasets`` sees them:
the tests make ``datasets.load_dataset`` fail if it is reached), samples files, benchmark JSON, and
run-directory manifests (deep nesting; the rest is tests/test_rundir.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.cli_support import run
from tests.data_support import require_data_packages

require_data_packages()

ROOT = Path(__file__).resolve().parents[1]
DEEP = b"[" * 5000

# (case, file name, bytes, what the error line must say)
DATA_FILES = [
    ("empty .txt", "a.txt", b"", "holds no text"),
    ("blank .txt", "a.txt", b"\n\n  \n\t\n", "holds no text"),
    ("non-UTF-8 .txt", "a.txt", b"fine\n\xff\xfe", "is not UTF-8 text: byte 0xff at line 2, column 1"),
    ("empty .jsonl", "a.jsonl", b"", "holds no records"),
    ("blank .jsonl", "a.jsonl", b"\n  \n", "holds no records"),
    ("non-UTF-8 .jsonl", "a.jsonl", b'{"text": "caf\xe9"}\n', "is not UTF-8 text: byte 0xe9 at line 1"),
    ("non-JSON line", "a.jsonl", b'{"text": "a"}\nnot json\n', "line 2 is not valid JSON"),
    ("messages not a list", "a.jsonl", b'{"messages": "notalist"}\n', "'messages' must be a non-empty list"),
    ("messages empty", "a.jsonl", b'{"messages": []}\n', "'messages' must be a non-empty list"),
    ("message not an object", "a.jsonl", b'{"messages": ["hi"]}\n', "messages[0] must be a mapping"),
    ("bad role", "a.jsonl", b'{"messages": [{"role": "bot", "content": "x"}]}\n', "role 'bot'"),
    (
        "content not a string",
        "a.jsonl",
        b'{"messages": [{"role": "user", "content": 5}]}\n',
        "content must be",
    ),
    ("neither messages nor text", "a.jsonl", b'{"prompt": "x"}\n', "neither 'messages'"),
    ("text not a string", "a.jsonl", b'{"text": 5}\n', "neither 'messages'"),
    ("line not an object", "a.jsonl", b'{"text": "a"}\n[1]\n', "line 2: expected a JSON object"),
    ("array of non-objects", "a.json", b'[{"text": "a"}, 3]', "record 1: expected a JSON object"),
    ("lone surrogate", "a.jsonl", b'{"text": "\\ud800"}\n', "lone surrogate at $.text"),
    ("NaN", "a.jsonl", b'{"text": "a", "score": NaN}\n', "NaN is not a JSON number"),
    ("nested too deeply", "a.jsonl", DEEP, "too deeply"),
    ("id beyond int64", "a.jsonl", b'{"text": "a", "id": 99999999999999999999999}\n', "64-bit integer"),
    ("id a list", "a.jsonl", b'{"text": "a", "prompt_id": [1]}\n', "'prompt_id' must be a string"),
]


@pytest.fixture
def no_datasets(monkeypatch, data_cache):
    """``datasets.load_dataset`` fails the test if reached: bad files must be refused before it."""
    import datasets

    def reached(*a, **k):
        raise AssertionError("datasets.load_dataset was reached")

    monkeypatch.setattr(datasets, "load_dataset", reached)
    monkeypatch.setenv("NEWLLM_CACHE", str(data_cache))


@pytest.mark.parametrize("case, name, data, needle", DATA_FILES, ids=[c[0] for c in DATA_FILES])
def test_bad_data_files(case, name, data, needle, tmp_path, no_datasets):
    f = tmp_path / name
    f.write_bytes(data)
    run(["data", "info", "--source", f, "--quiet"]).error(f"data file {str(f)!r}", needle)


@pytest.mark.parametrize("case, name, data, needle", DATA_FILES[::4], ids=[c[0] for c in DATA_FILES[::4]])
def test_bad_data_files_in_train(case, name, data, needle, tmp_path, no_datasets):
    f, out = tmp_path / name, tmp_path / "out"
    f.write_bytes(data)
    run(["train", "--data", f, "--out", out, "--quiet"]).error(str(f), needle)
    assert not out.exists()


def test_data_paths_that_are_not_files(tmp_path, no_datasets):
    d = tmp_path / "dir.jsonl"
    d.mkdir()
    run(["data", "info", "--source", d, "--quiet"]).error("has no file for split")
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    run(["data", "info", "--source", fifo, "--quiet"]).error("not a regular file")
    run(["data", "info", "--source", "/dev/zero", "--quiet"]).error("not a regular file")


GOOD_DATA = [
    ("paragraphs", "a.txt", b"one\n\ntwo\n\n\n\nthree\n", 3),
    ("array", "a.json", b'[{"text": "a"}, {"messages": [{"role": "user", "content": "hi"}]}]', 2),
    ("blank lines", "a.jsonl", b'{"text": "a", "x": 1}\n\n{"text": "b", "x": 2}\n', 2),
    ("a key changing type", "a.jsonl", b'{"text": "a", "x": 1}\n{"text": "b", "x": "s"}\n', 2),
    ("surrogate pair", "a.jsonl", b'{"text": "\\ud83d\\ude00"}\n', 1),
]


def test_what_datasets_refuses_names_the_file(tmp_path, monkeypatch, data_cache):
    """A file the check passes but datasets cannot read (its JSON reader fails on a key changing type
    after a blank line): still one line naming the file."""
    monkeypatch.setenv("NEWLLM_CACHE", str(data_cache))
    f = tmp_path / "a.jsonl"
    f.write_bytes(b'{"text": "a", "x": 1}\n\n{"text": "b", "x": "s"}\n')
    run(["data", "info", "--source", f, "--quiet"]).error(f"datasets cannot load data file {str(f)!r}")


@pytest.mark.parametrize("case, name, data, n", GOOD_DATA, ids=[c[0] for c in GOOD_DATA])
def test_good_data_files_still_load(case, name, data, n, tmp_path, monkeypatch, data_cache):
    monkeypatch.setenv("NEWLLM_CACHE", str(data_cache))
    f = tmp_path / name
    f.write_bytes(data)
    o = run(["data", "info", "--source", f, "--json", "--quiet"])
    o.check()
    assert o.code == 0 and json.loads(o.out)["conversations"] == n


# (case, bytes, what the error line must say); run as `train --samples-json FILE --vocab-size 64`
SAMPLES_FILES = [
    ("non-UTF-8", b"[[1, 2]]\n\xff", "is not UTF-8 text: byte 0xff at line 2"),
    ("not JSON", b"[[1,", "is not valid JSON"),
    ("nested too deeply", DEEP, "too deeply"),
    ("NaN", b"[[NaN]]", "NaN is not a JSON number"),
    ("lone surrogate", b'[["\\udc00"]]', "lone surrogate at $[0][0]"),
    ("id beyond int64", b"[[99999999999999999999999]]", "expected an integer token id in [0, 63]"),
    ("negative id", b"[[3, -1]]", "position 1 holds -1"),
    ("id beyond the vocabulary", b"[[1, 64]]", "sample 0 position 1 holds 64: expected an integer token id"),
    ("string id", b'[["a"]]', "holds 'a'"),
    ("bool id", b"[[true]]", "holds True"),
    ("empty list", b"[]", "non-empty list of non-empty lists"),
    ("empty sample", b"[[1], []]", "non-empty list of non-empty lists"),
    ("object", b'{"samples": [[1]]}', "non-empty list of non-empty lists"),
]


@pytest.mark.parametrize("case, data, needle", SAMPLES_FILES, ids=[c[0] for c in SAMPLES_FILES])
def test_bad_samples_files(case, data, needle, tmp_path):
    f, out = tmp_path / "s.json", tmp_path / "out"
    f.write_bytes(data)
    argv = ["train", "--samples-json", f, "--out", out, "--dim", "8", "--vocab-size", "64", "--quiet"]
    run(argv).error(str(f), needle)
    assert not out.exists()


def test_samples_paths_that_are_not_files(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    for path, needle in (
        (tmp_path, "is a directory"),
        (fifo, "not a regular file"),
        ("/dev/zero", "not a regular"),
    ):
        argv = ["train", "--samples-json", path, "--out", tmp_path / "o", "--dim", "8", "--vocab-size", "64"]
        run(argv).error(needle)
    assert not (tmp_path / "o").exists()


def _bench(**extra):
    entry = dict(kind="iterations", arch="layerwise", state="untrained", tolerance="mse0.01", method="picard")
    entry.update(tokens=8, device="cpu")
    entry["counts"] = dict(
        median_iterations=3.0, p90_iterations=4.0, max_iterations=5.0, mean_iterations=3.0, rate=1.0
    )
    for k, v in extra.items():
        if v is None:
            entry.pop(k)
        else:
            entry[k] = v
    return json.dumps({"benchmarks": [{"name": "t", "extra_info": entry}]}).encode()


BENCH_FILES = [
    ("committed baseline", (ROOT / "bench/baselines/cpu.json").read_bytes(), "is not pytest-benchmark JSON"),
    ("entry without tokens", _bench(tokens=None), "has no 'tokens': expected an integer"),
    ("kind a list (found by the heavy fuzz)", _bench(kind=[]), "no benchmark entries of a known kind"),
    ("tokens a string", _bench(tokens="8"), "tokens is '8': expected an integer"),
    ("counts missing", _bench(counts=None), "has no 'counts'"),
    ("counts.rate a string", _bench(counts={"rate": "x"}), "has no 'median_iterations'"),
    ("arch a number", _bench(arch=3), "arch is 3: expected a JSON string"),
    ("benchmarks an object", b'{"benchmarks": {}}', "is not pytest-benchmark JSON"),
    ("entry not an object", b'{"benchmarks": [3]}', "benchmarks[0] is int: expected an object"),
    ("extra_info a list", b'{"benchmarks": [{"extra_info": []}]}', "extra_info is list"),
    ("not an object", b"[1, 2]", "is not pytest-benchmark JSON"),
    ("non-UTF-8", b'{"benchmarks": []}\xc3', "is not UTF-8 text"),
    ("nested too deeply", DEEP, "too deeply"),
]


@pytest.mark.parametrize("case, data, needle", BENCH_FILES, ids=[c[0] for c in BENCH_FILES])
def test_bad_benchmark_files(case, data, needle, tmp_path):
    f, md = tmp_path / "b.json", tmp_path / "r.md"
    f.write_bytes(data)
    o = run(["bench-report", f, "--markdown", md])
    o.error(str(f), needle)
    assert not md.exists() and o.out == ""


def test_good_benchmark_file_with_plot_paths(tmp_path):
    f = tmp_path / "b.json"
    f.write_bytes(_bench())
    png = tmp_path / "sub" / "plot.png"
    o = run(["bench-report", f, "--plot", png, "--quiet"])
    assert o.code == 0 and f"plot: {png}" in o.out and png.read_bytes()[:4] == b"\x89PNG"
    run(["bench-report", f, "--plot", tmp_path]).error("is a directory: expected a file path")
    run(["bench-report", f, "--plot", tmp_path / "name"]).error("expected a file path ending in .png")
    run(["bench-report", f, "--markdown", f]).error("same file as the input")
    run(["bench-report", f, "--markdown", tmp_path / "x.png", "--plot", tmp_path / "x.png"]).error(
        "same file"
    )
    assert not (tmp_path / "name").exists() and not (tmp_path / "name.png").exists()
    assert json.loads(f.read_bytes())  # the input is intact


@pytest.fixture(scope="module")
def phase1_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile-run")
    (d / "s.json").write_text("[[1, 2, 3], [4, 5, 6]]")
    argv = ["train", "--samples-json", d / "s.json", "--out", d / "run", "--dim", "8", "--vocab-size", "32"]
    assert run([*argv, "--epochs", "1", "--quiet"]).code == 0
    return d / "run"


MANIFESTS = [
    ("nested too deeply", lambda b: DEEP, "JSON nested too deeply"),
    ("non-UTF-8", lambda b: b[:-2] + b"\xff}", "not UTF-8 text"),
    ("not JSON", lambda b: b[: len(b) // 2], "not valid JSON"),
    ("epoch negative", lambda b: b.replace(b'"epoch": 1', b'"epoch": -5'), "epoch must be in [0, 1000000]"),
]


@pytest.mark.parametrize("case, edit, needle", MANIFESTS, ids=[c[0] for c in MANIFESTS])
def test_bad_manifests(case, edit, needle, phase1_run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(phase1_run, d)
    m = d / "checkpoint.json"
    m.write_bytes(edit(m.read_bytes()))
    run(["solve", "--checkpoint", d, "--tokens", "2"]).error(str(m), needle)
    run(["phase2", "--checkpoint", d, "--out", tmp_path / "p2", "--quiet"]).error(needle)
    assert not (tmp_path / "p2").exists()
