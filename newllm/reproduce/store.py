"""One JSON file per finished task under ``OUT/tasks/``; a resumed run reuses a file when the
conditions digest stored in it equals the task's (any change of settings, code version or seed
makes the task run again)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..runs.jsonio import atomic_write_json
from .plan import Task

TASKS_DIR = "tasks"


def task_path(out: Path, task: Task) -> Path:
    return out / TASKS_DIR / f"{task.name}.json"


def load_finished(out: Path, task: Task) -> dict[str, Any] | None:
    """The stored result of ``task`` when present, readable and made under the same conditions."""
    path = task_path(out, task)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("digest") != task.digest:
        return None
    return data


def save(out: Path, task: Task, result: dict[str, Any]) -> Path:
    path = task_path(out, task)
    atomic_write_json(path, {**result, "conditions": task.conditions})
    return path


def clear(out: Path) -> None:
    """Remove stored task results (a run without ``--resume`` recomputes everything)."""
    root = out / TASKS_DIR
    if not root.is_dir():
        return
    for p in sorted(root.rglob("*.json"), reverse=True):
        p.unlink()
