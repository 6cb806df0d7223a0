"""The README's quick start and .ci/run stay identical; the constraints pin the CPU torch wheel."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_quick_start_has_exactly_two_commands():
    cmds = quick_start_commands()
    assert len(cmds) == 2 and all("\n" not in c for c in cmds)
    assert cmds[1].endswith("pytest -n auto")
    assert "newllm " in cmds[0]


def test_ci_runs_the_readme_test_command_verbatim():
    """.ci/run runs the README's line with its own venv (``"$VENV"`` for ``.venv``), never deleting ``.venv``."""
    text = (ROOT / ".ci" / "run").read_text()
    ci = [re.sub(r'"\$VENV([^"]*)"', r".venv\1", line) for line in text.splitlines()]
    cmd = quick_start_commands()[1]
    assert any(line == cmd or line.startswith(cmd + " || rc=$?") for line in ci)
    assert "VENV=.venv-ci" in text and not any(
        line.strip().startswith("rm") and ".venv " in line + " " for line in text.splitlines()
    ), ".ci/run must not delete a developer's .venv"


def test_torch_is_pinned_through_the_constraints_file():
    assert "torch==2.13.0" in (ROOT / "ci" / "constraints.txt").read_text().split()
    for cmd in quick_start_commands():
        assert "-c ci/constraints.txt" in cmd
