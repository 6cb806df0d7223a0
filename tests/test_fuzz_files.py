"""Fuzz the files the tool reads, for real (no sentinels): local data sources (.txt/.jsonl/.json),
samples files, benchmark JSON, run directories (manifest, Phase 1 cache, weights, data snapshot), and
hostile prompts for ``generate``. The property, per drawn input: exit 0, or exit 2 with exactly one
``error:`` line; never a traceback; nothing written outside ``--out``; the input run directory unchanged.

Example counts follow the Hypothesis profile (ci: 25 per test, thorough: 1000); ``pytest -m heavy``
runs each property 4x longer (tests/test_fuzz_files.py::test_heavy_*).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests import rundir_support as R
from tests.cli_support import Outcome, run, snapshot, written_outside
from tests.data_support import require_data_packages

require_data_packages()

FILES = settings(
    max_examples=settings.default.max_examples,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HEAVY = settings(FILES, max_examples=4 * settings.default.max_examples)


def lanes(body: Callable[..., None], **strategies: Any) -> tuple[Callable[..., None], Callable[..., None]]:
    """``body`` as two tests drawing its arguments from ``strategies`` (the rest are fixtures): the default
    lane (:data:`FILES`) and the opt-in ``heavy`` lane (:data:`HEAVY`, 4x the examples)."""
    return FILES(given(**strategies)(body)), pytest.mark.heavy(HEAVY(given(**strategies)(body)))

# --- values ---------------------------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from(
    ["", " ", "\x00", "\ud800", "\udfff", "<|im_end|>", "<|im_start|>user\n", "\u202e", "\x1b[31m", "é" * 40]
)
TEXT = st.one_of(st.text(max_size=16), NASTY_TEXT)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JSONISH = st.recursive(
    SCALAR,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(TEXT, kids, max_size=3)),
    max_leaves=6,
)
MESSAGE = st.one_of(
    st.fixed_dictionaries(
        {"role": st.one_of(st.sampled_from(["user", "assistant", "system", "bot"]), SCALAR), "content": TEXT}
    ),
    JSONISH,
)
GOOD_RECORD = st.one_of(
    st.fixed_dictionaries(
        {
            "messages": st.lists(
                st.fixed_dictionaries(
                    {
                        "role": st.sampled_from(["user", "assistant", "system"]),
                        "content": st.text(max_size=12),
                    }
                ),
                min_size=1,
                max_size=3,
            )
        },
        optional={"prompt_id": st.text(max_size=4)},
    ),
    st.fixed_dictionaries({"text": st.text(max_size=12)}),
)
ANY_RECORD = st.one_of(
    st.fixed_dictionaries(
        {"messages": st.one_of(st.lists(MESSAGE, min_size=1, max_size=3), JSONISH)},
        optional={"prompt_id": st.one_of(TEXT, SCALAR), "id": SCALAR, "text": JSONISH},
    ),
    st.fixed_dictionaries({"text": st.one_of(TEXT, SCALAR)}, optional={"id": SCALAR, "extra": JSONISH}),
    JSONISH,
)


#: Mostly well-formed records (so that many files get through to datasets and the tokenizer), some not.
RECORD = st.one_of(GOOD_RECORD, GOOD_RECORD, GOOD_RECORD, ANY_RECORD)


def dumps(obj, ascii_: bool) -> bytes:
    """JSON bytes; with ``ascii_`` False, non-ASCII raw (lone surrogates become bytes that are not UTF-8)."""
    return json.dumps(obj, ensure_ascii=ascii_, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data``, or it with a few bytes flipped, inserted or cut away."""
    b = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "insert", "cut"]))
        at = draw(st.integers(0, max(0, len(b) - 1)))
        if op == "flip" and b:
            b[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            b[at:at] = draw(st.binary(min_size=1, max_size=4))
        else:
            del b[at : at + draw(st.integers(1, 16))]
    return bytes(b)


@st.composite
def data_file(draw) -> tuple[str, bytes]:
    """(suffix, bytes) of a local data source: JSON lines, a JSON array, paragraphs, or garbage."""
    form = draw(st.sampled_from(["lines", "lines", "lines", "array", "text", "binary", "deep"]))
    asc = draw(st.booleans())
    if form == "lines":
        recs = draw(st.lists(RECORD, min_size=1, max_size=4))
        blank = draw(st.sampled_from(["\n", "\n\n", "\r\n"])).encode()
        body = blank.join(dumps(r, asc) for r in recs)
        suffix = draw(st.sampled_from([".jsonl", ".json"]))
    elif form == "array":
        body, suffix = dumps(draw(st.lists(RECORD, min_size=1, max_size=4)), asc), ".json"
    elif form == "text":
        paras = draw(st.lists(st.text(max_size=20), min_size=1, max_size=4))
        body, suffix = "\n\n".join(paras).encode("utf-8", "surrogatepass"), ".txt"
    elif form == "binary":
        body, suffix = draw(st.binary(max_size=40)), draw(st.sampled_from([".txt", ".jsonl", ".json"]))
    else:
        body, suffix = b"[" * draw(st.integers(900, 3000)), ".jsonl"
    return suffix, draw(mutated(body)) if draw(st.integers(0, 3)) == 0 else body


def check(o: Outcome, root: Path, before: dict, outputs: list[str]) -> None:
    if o.argv[0] == "verify" and o.code == 1:  # a check failed: documented, and said on stdout
        assert "FAILED" in o.out or '"passed": false' in o.out, (o.argv, o.out, o.err)
    o.check(also=(1,) if o.argv[0] == "verify" else ())
    event(f"exit {o.code}")  # --hypothesis-show-statistics: how many inputs were accepted
    assert not written_outside(before, snapshot(root), outputs), (o.argv, o.err)


# --- local data sources ----------------------------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path_factory, data_cache, monkeypatch):
    """A fresh directory per example is made inside the test; the newllm cache lives outside it."""
    monkeypatch.setenv("NEWLLM_CACHE", str(data_cache))
    return tmp_path_factory


def _data_source(scratch, drawn) -> None:
    suffix, body = drawn
    root = scratch.mktemp("src")
    f = root / f"d{suffix}"
    f.write_bytes(body)
    before = snapshot(root)
    check(run(["data", "info", "--source", f, "--max-length", "16", "--quiet"]), root, before, [])


test_hostile_data_sources, test_heavy_hostile_data_sources = lanes(_data_source, drawn=data_file())


# --- samples files ---------------------------------------------------------------------------------------

TOKEN = st.one_of(
    st.integers(0, 63), st.integers(0, 63), st.integers(0, 63), st.integers(-(2**70), 2**70), SCALAR
)
SAMPLES = st.one_of(
    st.lists(st.lists(st.integers(0, 63), min_size=1, max_size=4), min_size=1, max_size=3),
    st.lists(st.lists(TOKEN, max_size=4), max_size=3),
    JSONISH,
)


def _samples(scratch, samples, asc, damage) -> None:
    root = scratch.mktemp("samples")
    f = root / "s.json"
    body = dumps(samples, asc)
    f.write_bytes(damage(body))
    before = snapshot(root)
    argv = ["train", "--samples-json", f, "--out", root / "out", "--dim", "4", "--vocab-size", "64"]
    argv += ["--epochs", "1", "--max-iterations", "5", "--loop", "batched", "--batch-samples", "4"]
    check(run([*argv, "--quiet"]), root, before, ["out"])


def _maybe_mutated(data):
    return lambda b: data.draw(mutated(b)) if data.draw(st.integers(0, 3)) == 0 else b


def _samples_drawn(scratch, samples, asc, data) -> None:
    _samples(scratch, samples, asc, _maybe_mutated(data))


test_hostile_samples_files, test_heavy_hostile_samples_files = lanes(
    _samples_drawn, samples=SAMPLES, asc=st.booleans(), data=st.data()
)


# --- benchmark JSON --------------------------------------------------------------------------------------

GOOD_BENCH = {
    "iterations": dict(
        device="cpu", arch="layerwise", state="trained", tolerance="mse0.01", method="picard", tokens=8,
        counts=dict(median_iterations=2.0, p90_iterations=3.0, max_iterations=4.0, mean_iterations=2.0, rate=1.0),
    ),
    "throughput": dict(
        device="cpu", dtype="float32", arch="mixed", tokens=8, token_iterations_per_s=1e3, solve_gflops=1.0,
        roofline_gflops=2.0, roofline_fraction=0.5,
    ),
    "loop_speedup": dict(device="cpu", arch="sequential", tokens=8, iterations=2, speedup=3.0),
    "phase1_time_to_95": dict(device="cpu", arch="layerwise", tokens=8, vocab_size=64, speedup=2.0),
}  # fmt: skip


@st.composite
def bench_entry(draw):
    kind = draw(st.sampled_from([*GOOD_BENCH, "other"]))
    extra = json.loads(json.dumps(GOOD_BENCH.get(kind, {})))
    extra["kind"] = kind
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        if draw(st.booleans()) and extra:
            extra.pop(draw(st.sampled_from(sorted(extra))))
        else:
            counts = extra.get("counts")
            target = counts if isinstance(counts, dict) and counts and draw(st.booleans()) else extra
            key = draw(st.sampled_from(sorted(target) + ["extra"]))
            target[key] = draw(JSONISH)
    entry = {"name": "t", "extra_info": extra}
    return draw(st.one_of(st.just(entry), st.just(entry), st.just(entry), JSONISH))


def _bench_file(scratch, entries, wrap, asc, data) -> None:
    root = scratch.mktemp("bench")
    f = root / "b.json"
    body = dumps({"benchmarks": entries} if wrap else entries, asc)
    f.write_bytes(data.draw(mutated(body)) if data.draw(st.integers(0, 3)) == 0 else body)
    before = snapshot(root)
    check(run(["bench-report", f, "--markdown", root / "out" / "r.md"]), root, before, ["out"])


BENCH_ARGS = dict(
    entries=st.lists(bench_entry(), max_size=3), wrap=st.booleans(), asc=st.booleans(), data=st.data()
)


test_hostile_benchmark_files, test_heavy_hostile_benchmark_files = lanes(_bench_file, **BENCH_ARGS)


# --- run directories: manifest, cache, weights, data snapshot --------------------------------------------


@pytest.fixture(scope="module")
def phase1(tmp_path_factory):
    return R.phase1_run(tmp_path_factory.mktemp("fuzz-run") / "p1")


def _json_paths(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _json_paths(v, (*path, i))


EDITS = st.tuples(
    st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4),
    st.one_of(st.none(), st.floats(0, 1)),
)


def apply_edits(data: bytes, edits) -> bytes:
    """XOR the bytes at the given relative positions, then keep the given fraction (None: all)."""
    flips, cut = edits
    b = bytearray(data)
    for where, mask in flips:
        if b:
            b[int(where * (len(b) - 1))] ^= mask
    return bytes(b if cut is None else b[: int(cut * len(b))])


@st.composite
def run_damage(draw):
    """A function that damages a copy of the run: a manifest field replaced (and maybe its bytes edited), or
    a listed file's bytes edited with the manifest made to vouch for them (so that the parser, not the
    checksum, meets the damage)."""
    target = draw(st.sampled_from(["manifest", "cache", "model", "data", "optimizer"]))
    edits = draw(EDITS)
    if target == "manifest":
        pick, value = draw(st.integers(0, 10**6)), draw(JSONISH)

        def damage(d: Path) -> None:
            m = R.manifest(d)
            paths = list(_json_paths(m))[1:]
            *parent, key = paths[pick % len(paths)]
            obj = m
            for k in parent:
                obj = obj[k]
            obj[key] = value
            (d / "checkpoint.json").write_bytes(apply_edits(dumps(m, True), edits))

        return damage

    def damage(d: Path) -> None:
        f = R.listed(d, target)
        f.write_bytes(apply_edits(f.read_bytes(), edits))
        R.relist(d, target)

    return damage


def _hash_tree(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in d.rglob("*") if p.is_file()
    }


def _run_directory(scratch, phase1, damage, command) -> None:
    root = scratch.mktemp("run")
    d = R.copy_run(phase1, root / "p1")
    damage(d)
    kept = _hash_tree(d)
    s = root / "s.json"
    s.write_text(json.dumps(R.SAMPLES))
    before = snapshot(root)
    if command == "phase2":
        argv = ["phase2", "--checkpoint", d, "--out", root / "out", "--epochs", "1", "--val-fraction", "0.4"]
        outputs = ["out"]
    elif command == "solve":
        argv, outputs = ["solve", "--checkpoint", d, "--tokens", "3"], []
    elif command == "contraction":
        argv = ["contraction", "--checkpoint", d, "--tokens", "2", "--picard-iterations", "5"]
        argv, outputs = [*argv, "--refine-iterations", "5", "--pairs", "1", "--ascent-steps", "0"], []
    elif command == "verify":
        argv, outputs = ["verify", "--checkpoint", d, "--tokens", "3", "--checks", "finite,collapse"], []
    else:  # resuming the damaged run: it may write there, and only there
        argv = ["train", "--samples-json", s, "--out", d, "--dim", "8", "--vocab-size", "64", "--resume"]
        argv += ["--epochs", "1", "--loop", "batched"]
        outputs = ["p1"]
    check(run([*argv, "--quiet"]), root, before, outputs)
    if command != "train-resume":
        assert _hash_tree(d) == kept  # a reader never changes the run it reads


RUN_ARGS = dict(
    damage=run_damage(),
    command=st.sampled_from(["phase2", "solve", "contraction", "verify", "train-resume"]),
)


test_hostile_run_directories, test_heavy_hostile_run_directories = lanes(_run_directory, **RUN_ARGS)


# --- generate: hostile prompts ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phase2_gpt2(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz-gen")
    (d / "s.json").write_text(json.dumps([[464, 3290, 318, 257], [40, 588, 3797, 13], [15496, 995, 11]]))
    assert (
        run(["train", "--samples-json", d / "s.json", "--out", d / "p1", "--dim", "4", "--quiet"]).code == 0
    )
    assert run(["phase2", "--checkpoint", d / "p1", "--out", d / "p2", "--epochs", "1", "--quiet"]).code == 0
    return d / "p2"


PROMPT_ARGS = dict(
    prompt=st.one_of(st.text(max_size=30), NASTY_TEXT, st.text(alphabet=st.characters(), max_size=8)),
    flags=st.lists(
        st.sampled_from(
            [["--chat"], ["--greedy"], ["--json"], ["--max-new-tokens", "0"], ["--temperature", "1e-3"]]
        ),
        max_size=3,
    ),
)


def _prompt(phase2_gpt2, scratch, prompt, flags) -> None:
    root = scratch.mktemp("gen")
    before = snapshot(root)
    argv = ["generate", "--checkpoint", phase2_gpt2, "--prompt", prompt, "--max-new-tokens", "3"]
    check(run([*argv, *(x for f in flags for x in f), "--quiet"]), root, before, [])


test_hostile_prompts, test_heavy_hostile_prompts = lanes(_prompt, **PROMPT_ARGS)


# --- verify: hostile baseline files ----------------------------------------------------------------------

VERIFY = ["verify", "--dim", "4", "--vocab-size", "64", "--tokens", "4", "--checks", "convergence"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A baseline ``newllm verify --write-baseline`` wrote for :data:`VERIFY` (so undamaged, it gates)."""
    f = tmp_path_factory.mktemp("fuzz-baseline") / "base.json"
    assert run([*VERIFY, "--write-baseline", f, "--quiet"]).code == 0
    return json.loads(f.read_text())


@st.composite
def baseline_damage(draw):
    """A baseline document with one field replaced (or removed), its bytes maybe edited. Half the picks
    fall on a top-level or ``settings`` field (few of them, all read by the gate), half anywhere."""
    pick, value, drop, edits = draw(st.integers(0, 10**6)), draw(JSONISH), draw(st.booleans()), draw(EDITS)
    shallow = draw(st.booleans())

    def damage(doc: dict) -> bytes:
        doc = json.loads(json.dumps(doc))
        paths = [
            p
            for p in _json_paths(doc)
            if p and (not shallow or len(p) == 1 or p[:1] == ("settings",) and len(p) == 2)
        ]
        *parent, key = paths[pick % len(paths)]
        obj = doc
        for k in parent:
            obj = obj[k]
        if drop and isinstance(obj, dict):
            del obj[key]
        else:
            obj[key] = value
        return apply_edits(dumps(doc, draw(st.booleans())), edits)

    return damage


def _baseline_file(scratch, baseline, damage) -> None:
    root = scratch.mktemp("verify")
    f = root / "base.json"
    f.write_bytes(damage(baseline))
    before = snapshot(root)
    check(run([*VERIFY, "--baseline", f, "--quiet"]), root, before, [])


test_hostile_baseline_files, test_heavy_hostile_baseline_files = lanes(_baseline_file, damage=baseline_damage())
