"""Fixtures of the property suite: the matrix cache of trained models (one per code version)."""

from __future__ import annotations

from pathlib import Path

import pytest

from newllm.matrix.cache import default_root


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """The shared matrix cache (``$NEWLLM_CACHE_DIR`` or ``~/.cache/newllm/models``): trained models are
    trained once per code version, by one xdist worker while the others wait on its file lock."""
    root = default_root()
    root.mkdir(parents=True, exist_ok=True)
    return root
