"""The CI-aware requirement check of the data tests (their fixtures live in ``tests/conftest.py``)."""

from __future__ import annotations

import importlib.util
import os

import pytest

from newllm.data._deps import DATA_PACKAGES

#: Raw chitchat conversations used by the small corpus (about half are kept: the rest have no reply).
SMALL_LIMIT = 300


def require_data_packages(packages: dict[str, str] | None = None) -> None:
    """Skip the calling test module when the ``data`` extra is missing -- but with ``CI`` set, raise
    ImportError instead, so that CI fails rather than silently skipping the data tests."""
    packages = DATA_PACKAGES if packages is None else packages
    missing = [dist for mod, dist in packages.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return
    msg = f"the 'data' extra is not installed (missing: {', '.join(missing)}); pip install -e '.[data]'"
    if os.environ.get("CI"):
        raise ImportError(msg + " -- CI is set, so the data tests fail instead of skipping")
    pytest.skip(msg, allow_module_level=True)
