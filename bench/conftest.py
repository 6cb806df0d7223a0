"""Benchmark session setup: fixed torch threads and the shared model bank."""

from __future__ import annotations

import pytest
import torch

from bench.cases import THREADS, ModelBank

torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def models() -> ModelBank:
    """Untrained and trained models, each built (and trained) once per session."""
    return ModelBank()
