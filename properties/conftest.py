"""Fixtures of the property suite: one directory for models trained once per run and code version."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def train_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by every xdist worker of a run: the parent of the per-worker base temp directories."""
    return tmp_path_factory.getbasetemp().parent / "newllm-properties"
