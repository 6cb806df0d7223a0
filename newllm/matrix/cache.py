"""The one cache of trained models: each :class:`~newllm.matrix.models.ModelSpec` trained at most once
per code version, shared by concurrent processes (xdist workers) through a file lock.

Layout: ``ROOT/<code version>/<key>/`` is a newllm checkpoint (:mod:`newllm.runs.checkpoint`:
safetensors + a manifest with SHA-256 sums); ``<key>`` hashes :meth:`ModelSpec.describe`, the code
version and the torch version. A trained model differs from its initial weights only in the
embedding rows that received gradients, so the checkpoint stores a compact model of the changed rows
(:func:`newllm.matrix.compact.compact_model`) and loading rebuilds the rest from the seed; a SHA-256
of the full weights, checked on load, proves the rebuild exact. ``ROOT`` is ``$NEWLLM_CACHE_DIR`` or
``~/.cache/newllm/models``; code versions untouched for :data:`STALE_DAYS` days are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from filelock import FileLock

from ..runs.checkpoint import MANIFEST, CheckpointError, load_checkpoint, save_checkpoint
from .compact import compact_model

if TYPE_CHECKING:
    from ..model import CVFPModel
    from .models import Built, ModelSpec

ENV = "NEWLLM_CACHE_DIR"
STALE_DAYS = 3


def default_root() -> Path:
    """``$NEWLLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/newllm/models`` (``~/.cache/newllm/models``)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "newllm" / "models"


def code_version() -> str:
    """sha256 over the ``newllm`` package's Python sources (path and content), 16 hex digits."""
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def key(spec: ModelSpec) -> str:
    blob = json.dumps({"spec": spec.describe(), "torch": torch.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def entry(root: Path, spec: ModelSpec) -> Path:
    """The directory that holds (or will hold) the trained model of ``spec``."""
    return Path(root) / code_version() / key(spec)


def fetch(root: Path, spec: ModelSpec) -> Built:
    """The trained model of ``spec`` from ``root``; trained and stored first when absent (one process
    trains, concurrent ones wait on the lock and load)."""
    from .models import train

    d = entry(root, spec)
    d.parent.mkdir(parents=True, exist_ok=True)
    os.utime(d.parent)  # marks this code version as in use (see prune)
    with FileLock(str(d) + ".lock"):
        if (d / MANIFEST).exists():
            try:
                return load(d, spec)
            except CheckpointError:
                shutil.rmtree(d, ignore_errors=True)  # a damaged entry is retrained
        built = train(spec)
        store(d, spec, built)
    prune(Path(root))
    return built


def weights_digest(model: CVFPModel) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


def store(d: Path, spec: ModelSpec, built: Built) -> None:
    """Write ``built`` as a checkpoint of its changed embedding rows and all other weights."""
    from .models import start

    init, _ = start(spec)
    now = built.model.token_embedding.weight.detach()
    rows = (now != init.token_embedding.weight.detach().to(now.device)).any(dim=1).nonzero().flatten()
    rows_list = rows.tolist() or [0]
    small, _ = compact_model(built.model, rows_list)
    state = {
        "spec": spec.describe(),
        "torch": torch.__version__,
        "rows": rows_list,
        "weights_sha256": weights_digest(built.model),
        "history": built.history,
    }
    save_checkpoint(d, small, epoch=len(built.history.get("epochs", [])), state=state)


def load(d: Path, spec: ModelSpec) -> Built:
    """The model stored in ``d``: the spec's initial weights with the stored rows and weights applied."""
    from .models import Built, start

    ck = load_checkpoint(d)
    state = ck.manifest.state
    model, id_map = start(spec)
    rows = torch.tensor(state["rows"], dtype=torch.long)
    small = ck.model.state_dict()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name == "token_embedding.weight":
                t[rows.to(t.device)] = small[name][: len(rows)].to(t.device)
            else:
                t.copy_(small[name])
    if weights_digest(model) != state["weights_sha256"]:
        raise CheckpointError(f"{str(d)!r}: the rebuilt weights do not match the stored SHA-256")
    history = {**state["history"], "cached": True}
    return Built(model.eval(), history, id_map)


def prune(root: Path, days: float = STALE_DAYS) -> None:
    """Remove the entries of code versions not used for ``days`` days (never the current one)."""
    now, current = time.time(), code_version()
    for d in root.iterdir() if root.is_dir() else ():
        if d.is_dir() and d.name != current and now - d.stat().st_mtime > days * 86400:
            shutil.rmtree(d, ignore_errors=True)
