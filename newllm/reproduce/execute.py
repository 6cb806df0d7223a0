"""Running a plan's tasks: reuse finished ones (``--resume``), run the rest in this process or in
``jobs`` worker processes, and return every result in its stored form, in task order.

A worker runs all pending tasks of one (architecture, seed) group, so the group's initial weights are
built once; groups with trained tasks go first (they hold the longest Phase 1 runs). Each task runs
with the plan's torch thread count, so its numbers do not depend on ``jobs``.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from . import store
from .experiments import run_task
from .plan import Plan, Task


def run_group(tasks: list[Task], plan: Plan, out: Path, cache: Any) -> list[str]:
    """Run and store ``tasks`` (one group); returns their names."""
    for task in tasks:
        store.save(out, task, run_task(task, plan, cache))
    return [t.name for t in tasks]


def groups(tasks: list[Task]) -> list[list[Task]]:
    """``tasks`` by (architecture, seed), groups with trained tasks first, each in plan order."""
    by: dict[tuple[str, int], list[Task]] = {}
    for t in tasks:
        by.setdefault(t.group, []).append(t)
    trained = [g for g in by.values() if any(t.experiment != "untrained" for t in g)]
    return trained + [g for g in by.values() if all(t.experiment == "untrained" for t in g)]


def run_tasks(
    plan: Plan, out: Path, *, resume: bool, progress: bool, jobs: int, cache: Any
) -> tuple[list[dict[str, Any]], int]:
    """``(results in task order, number reused)``; see the module doc."""
    if not (isinstance(jobs, int) and jobs >= 1):
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    tasks = plan.tasks()
    done = {t.name: store.load_finished(out, t) for t in tasks} if resume else {}
    pending = [t for t in tasks if done.get(t.name) is None]
    bar = tqdm(total=len(tasks), desc="reproduce", unit="exp", disable=not progress, dynamic_ncols=True)
    bar.update(len(tasks) - len(pending))
    if jobs == 1:
        for task in pending:
            bar.set_postfix_str(task.name, refresh=False)
            run_group([task], plan, out, cache)
            bar.update(1)
    else:
        _in_workers(groups(pending), plan, out, cache, jobs, lambda names: bar.update(len(names)))
    bar.close()
    results = [json.loads(store.task_path(out, t).read_text()) for t in tasks]  # the stored form
    return results, len(tasks) - len(pending)


def _in_workers(
    work: list[list[Task]], plan: Plan, out: Path, cache: Any, jobs: int, done: Callable[[list[str]], Any]
) -> None:
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter per worker (torch threads, no fork)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = [pool.submit(run_group, g, plan, out, cache) for g in work]
        for f in as_completed(futures):
            done(f.result())
