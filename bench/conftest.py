"""Benchmark session setup: fixed torch threads, the shared model bank, and the matrix settings written
into the benchmark JSON (read by the gate, ``python -m newllm.tools.gate``)."""

from __future__ import annotations

import pytest
import torch

from bench.cases import THREADS, ModelBank
from newllm.matrix import regression as R

torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def models() -> ModelBank:
    """Untrained and trained models, each built (and trained, or loaded from the matrix cache) once per session."""
    return ModelBank()


def pytest_benchmark_update_json(config, benchmarks, output_json) -> None:
    """What every configuration of this run was made under (a baseline's ``settings``)."""
    output_json["matrix"] = R.settings(threads=THREADS)
