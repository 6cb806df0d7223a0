"""``newllm reproduce --quick`` end to end on a tiny model (hidden ``--tiny``): files, JSON, resume, determinism."""

import json
import re

import pytest

from newllm.cli.main import main
from newllm.reproduce import load_claims, quick_plan
from newllm.reproduce.experiments import run_task
from newllm.reproduce.store import TASKS_DIR, load_finished
from newllm.reproduce.verdicts import FAILS, HOLDS, INCONCLUSIVE, NOT_MEASURED, QUESTIONS
from newllm.runs.jsonio import dumps

TINY = {"embed_dim": 16, "context_dim": 16, "hidden_dim": 16, "vocab_size": 1100}


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def strip_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "timing"}


@pytest.mark.heavy  # about 45 CPU-s: the opt-in lane (pytest -m heavy)
def test_quick_end_to_end_then_resume(tmp_path, capsys):
    out, models = tmp_path / "r", tmp_path / "models"
    seeds = ("--seeds", "0,1", "--trained-seeds", "0")
    code, stdout, _ = run_cli(
        capsys, "reproduce", "--quick", "--tiny", "--out", str(out), "--quiet", "--json",
        "--model-cache", str(models), "--jobs", "2", *seeds,
    )  # fmt: skip
    assert code == 0
    summary = json.loads(stdout)
    assert summary["report"] == str(out / "report.md") and summary["quick"]
    assert summary["seeds"] == [0, 1] and summary["trained_seeds"] == [0]
    plan = quick_plan((0, 1), (0,), model=TINY)
    assert summary["tasks"] == len(plan.tasks()) and summary["reused_tasks"] == 0
    for name in ("report.md", "report.json", "rate_vs_tokens.png", "rate_vs_threshold.png",
                 "residual_traces.png", "spectra.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    first = json.loads((out / "report.json").read_text())
    claims = load_claims().claims
    assert len(first["claims"]) == len(claims) == len(summary["verdicts"])
    statuses = {c["status"] for c in first["claims"]}
    assert statuses <= {HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED}
    # quick skips 512 tokens: those claims are reported as not measured, the rest are measured
    by_id = {c["id"]: c for c in first["claims"]}
    assert by_id["000.t512.lw.rate"]["status"] == NOT_MEASURED
    assert by_id["000.t10.lw.rate"]["status"] != NOT_MEASURED
    assert sum(first["counts"][s] for s in (HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED)) == len(claims)
    assert "slack" in first and "tolerances" not in first
    for c in first["claims"]:
        assert c["question"] in QUESTIONS and {"holds_under", "fails_under", "trivial"} <= set(c)
        for v in c["variants"]:
            assert {"n_seeds", "values", "interval", "prediction", "question", "own"} <= set(v), c["id"]
    v = by_id["000.t10.lw.rate"]["variants"][0]
    assert v["own"] and v["n_seeds"] == 2 and len(v["values"]) == 2 and v["question"] == "single_run"
    assert set(v["interval"]) >= {"lower", "upper", "level"} and v["prediction"]["level"] == 0.95
    md = (out / "report.md").read_text()
    for part in (
        "## Summary",
        "### Findings that matter",
        "## All verdicts",
        "![rate vs threshold](rate_vs_threshold.png)",
        "## Internal consistency",
        "## Claims judged not measurable",
        "## Method",
    ):
        assert part in md
    assert "$" not in md.replace("$NEWLLM", "")  # every template placeholder filled
    links = set(re.findall(r"\]\(#(c-[\w-]+)\)", md))
    anchors = set(re.findall(r'<a id="(c-[\w-]+)"></a>', md))
    assert links and links <= anchors  # every finding and verdict links to its row
    assert len(list((out / TASKS_DIR).rglob("*.json"))) == summary["tasks"]

    # resume reuses every task and reproduces the report exactly
    code, stdout, _ = run_cli(
        capsys, "reproduce", "--quick", "--tiny", "--out", str(out), "--quiet", "--resume",
        "--model-cache", str(models), *seeds,
    )  # fmt: skip
    assert code == 0 and f"report: {out / 'report.md'}" in stdout
    again = json.loads((out / "report.json").read_text())
    assert again["timing"]["reused_tasks"] == summary["tasks"]
    assert strip_timing(again) == strip_timing(first)

    # a task recomputed here (one process; the stored ones ran in two workers) from scratch (trained
    # here, no cache) or from the cached trained model gives the stored numbers (determinism for a
    # given seed, whatever --jobs; the cache stores the trained weights exactly)
    trained = [t for t in plan.tasks() if t.experiment != "untrained"]
    assert len(list(models.rglob("checkpoint.json"))) == len(trained)
    for task in plan.tasks()[:2] + plan.tasks()[-1:]:
        stored = load_finished(out, task)
        for cache in (None, models) if task.experiment != "untrained" else (None,):
            fresh = json.loads(dumps(run_task(task, plan, cache)))  # stored form: NaN -> null
            for key in ("judges", "fixed_point", "epochs", "threshold_curve"):
                assert fresh.get(key) == stored.get(key), (task.name, key, cache)
            if task.experiment != "untrained":
                assert fresh["timing"]["model_cached"] is (cache is not None)

    # a changed condition invalidates the stored task
    other = quick_plan((0, 1), (0,), model={**TINY, "init_std": 0.03})
    assert load_finished(out, other.tasks()[0]) is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "0,x"], "not an integer"),
        (["--seeds", "1,1"], "distinct"),
        (["--threads", "0"], "threads"),
        (["--jobs", "0"], "jobs"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    code, _, err = run_cli(capsys, "reproduce", "--quick", "--tiny", "--out", str(tmp_path), *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_readme_main_job_is_the_quick_reproduction():
    from tests.test_repo_contract import quick_start_commands

    assert quick_start_commands()[0].endswith("&& newllm reproduce --quick")


def test_report_without_matplotlib_has_no_figures(tmp_path, monkeypatch):
    from newllm.reproduce import plots
    from newllm.reproduce.report import write_markdown
    from newllm.reproduce.runner import build_report, write_figures

    monkeypatch.setattr(plots, "available", lambda: False)
    plan = quick_plan(model=TINY)
    report = build_report(plan, [])  # no experiments: only the threshold arithmetic is measured
    assert write_figures(tmp_path, report) == {}
    arithmetic_only = [c for c in load_claims().claims if all(v.a.exp == "arithmetic" for v in c.variants)]
    assert len(arithmetic_only) == 3
    assert report["counts"][NOT_MEASURED] == len(load_claims().claims) - len(arithmetic_only)
    md = write_markdown(tmp_path / "report.md", report, load_claims(), {}).read_text()
    assert "matplotlib is not installed" in md and ".png" not in md
