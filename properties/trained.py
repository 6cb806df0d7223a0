"""Train a model once and share it: across xdist workers (a file lock) and across runs of the same code.

A trained model is stored as a newllm checkpoint under ``root/<key>``, where the key hashes the
training recipe and the source of the ``newllm`` package: a changed recipe or changed code retrains.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

import newllm
from newllm.model import CVFPModel
from newllm.runs.checkpoint import MANIFEST, load_model, save_checkpoint


def code_version() -> str:
    """sha256 over the ``newllm`` package's Python sources (path and content), 16 hex digits."""
    pkg = Path(newllm.__file__).parent
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def recipe_key(recipe: dict) -> str:
    blob = json.dumps({"recipe": recipe, "code": code_version()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cached_model(root: str | Path, recipe: dict, train: Callable[[], CVFPModel]) -> CVFPModel:
    """The model ``train()`` returns for ``recipe``, trained at most once per code version under ``root``.

    Concurrent callers (xdist workers) wait on a lock; later ones load the checkpoint (eval mode).
    """
    d = Path(root) / f"trained-{recipe_key(recipe)}"
    d.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(d) + ".lock"):
        if not (d / MANIFEST).exists():
            model = train()
            save_checkpoint(d, model, epoch=1, state={"recipe": recipe, "code": code_version()})
        return load_model(d)
