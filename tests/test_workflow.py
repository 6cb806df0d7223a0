"""The users' GitHub Actions workflow runs the same scripts as the project's CI."""

import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def load():
    data = yaml.safe_load(WORKFLOW.read_text())
    on = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on:` key as True
    return data, on


def runs(job) -> list[str]:
    return [s["run"] for s in job["steps"] if "run" in s]


def uploads(job) -> list[str]:
    paths = []
    for s in job["steps"]:
        if str(s.get("uses", "")).startswith("actions/upload-artifact@"):
            paths += [p.strip() for p in str(s["with"]["path"]).splitlines() if p.strip()]
    return paths


def job_running(data, script):
    jobs = [j for j in data["jobs"].values() if any(script in r.split() for r in runs(j))]
    assert len(jobs) == 1, f"exactly one job must run {script}"
    return jobs[0]


def test_triggers_on_push_and_pull_request():
    _, on = load()
    assert "push" in on and "pull_request" in on


def test_cpu_job_runs_ci_run_and_uploads_its_benchmark_json():
    data, _ = load()
    job = job_running(data, ".ci/run")
    ci = (ROOT / ".ci" / "run").read_text()
    written = re.search(r"--benchmark-json (\S+)", ci).group(1)
    assert "pytest bench -n 0" in ci
    gate = f"python -m newllm.tools.gate {written} --baseline bench/baselines/cpu.json"
    assert gate in ci.splitlines(), "the CPU job gates the benchmark JSON it uploads with the one gate"
    assert written in uploads(job)
    assert job["timeout-minutes"] <= 90


def test_gpu_job_runs_gpu_sh_on_a_self_hosted_gpu_runner_and_uploads_its_output():
    data, _ = load()
    job = job_running(data, "ci/gpu.sh")
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    step = next(s for s in job["steps"] if s.get("run") == "ci/gpu.sh")
    out = step["env"]["OUT"]
    assert out.rstrip("/") + "/" in uploads(job)
    gpu = (ROOT / "ci" / "gpu.sh").read_text()
    assert '--benchmark-json "$OUT/bench-cuda.json"' in gpu
    assert "-m newllm.tools.gate '$OUT/bench-cuda.json' --baseline bench/baselines/cuda.json" in gpu


def test_scripts_exist_and_are_executable():
    for script in (ROOT / ".ci" / "run", ROOT / "ci" / "gpu.sh", ROOT / "ci" / "regenerate-baselines"):
        assert script.is_file() and os.access(script, os.X_OK), script


def test_mutation_job_runs_the_lane_nightly_and_on_demand_only():
    data, on = load()
    assert "schedule" in on and "workflow_dispatch" in on
    job = job_running(data, "ci/mutation.sh")
    assert "schedule" in job["if"] and "workflow_dispatch" in job["if"] and "push" not in job["if"]
    assert any(p.endswith("summary.json") for p in uploads(job))
    # the push jobs do not run again at night
    for script in (".ci/run", "ci/gpu.sh"):
        assert job_running(data, script)["if"] == "github.event_name != 'schedule'"
