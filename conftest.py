"""Root pytest configuration: offline Hugging Face, one torch thread per xdist worker,
Hypothesis profiles, and the ``device`` fixture (CPU always, CUDA when present)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Under xdist each worker is its own process: one thread each avoids oversubscribing the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(int(os.environ.get("NEWLLM_TEST_THREADS", "1")))

_TENSOR = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# `ci` extends Hypothesis's built-in CI profile (derandomized, no database) -- loaded when CI=true.
settings.register_profile("ci", parent=settings.get_profile("ci"), max_examples=25, **_TENSOR)
settings.register_profile("dev", max_examples=20, **_TENSOR)
settings.register_profile("gpu", max_examples=40, **_TENSOR)
settings.register_profile("thorough", max_examples=1000, **_TENSOR)
_profile = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(_profile)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each test that takes ``device`` runs on CPU and, when available, on CUDA."""
    return torch.device(request.param)
