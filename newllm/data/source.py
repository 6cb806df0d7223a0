"""Dialogue sources, all loaded with ``datasets.load_dataset``.

``source`` is one of:

- ``"ultrachat"`` (alias ``"chitchat"``): the local corpus in UltraChat's schema built from the
  ``chitchat-dataset`` package (:mod:`newllm.data.chitchat`), loaded with ``load_dataset("json", ...)``;
  splits ``train_sft``, ``test_sft``. It is the offline stand-in for UltraChat, not UltraChat itself.
- a local path: a ``.jsonl``/``.json`` file of records in that schema, a ``.txt`` file (each
  blank-line separated paragraph is one plain-text sample), or a directory holding ``{split}.jsonl``
  (or ``.json``/``.txt``). A single file is the whole data whatever ``split`` says.
- a hub name such as ``"HuggingFaceH4/ultrachat_200k"``: the real dataset, where the network allows.
  With ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` set, or when the hub's host does not answer
  within a few seconds, it fails at once with :class:`HubUnavailableError` (no retries).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ._deps import require
from .check import check_local_file
from .chitchat import SPLITS, chitchat_corpus, corpus_meta
from .store import cache_dir

LOCAL_NAMES = ("ultrachat", "chitchat")
HUB_ULTRACHAT = "HuggingFaceH4/ultrachat_200k"
JSON_SUFFIXES = (".jsonl", ".json")
TEXT_SUFFIXES = (".txt",)
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUE = {"1", "ON", "YES", "TRUE"}
#: Seconds to wait for the hub's host before declaring it unreachable.
HUB_PROBE_TIMEOUT = 5.0


class HubUnavailableError(ConnectionError):
    """A hub dataset was asked for, but the hub cannot be reached (offline variables set, or no answer)."""


@dataclass(frozen=True)
class ResolvedSource:
    """Where a source's split comes from: ``kind`` is ``local-corpus``, ``json``, ``text`` or ``hub``."""

    source: str
    split: str
    kind: str
    #: The file behind the split (None for the hub).
    path: Path | None = None
    #: ``meta.json`` of the local corpus, with ``built_now``; empty otherwise.
    meta: dict[str, Any] = field(default_factory=dict)


def offline_reason() -> str | None:
    """``"HF_HUB_OFFLINE=1"`` (or the HF_DATASETS_OFFLINE setting) when either variable is true, else None."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        value = os.environ.get(var, "")
        if value.strip().upper() in _TRUE:
            return f"{var}={value}"
    return None


def resolve_source(source: str, split: str = "train_sft", cache: str | Path | None = None) -> ResolvedSource:
    """Decide what ``source`` means (see the module doc); builds the local corpus if needed."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"source must be a non-empty string, got {source!r}")
    if source.lower() in LOCAL_NAMES:
        if split not in SPLITS:
            raise ValueError(
                f"split {split!r} does not exist in source {source!r}: expected one of {', '.join(SPLITS)}"
            )
        directory, built = chitchat_corpus(cache)
        meta = {**corpus_meta(directory), "built_now": built, "directory": str(directory)}
        return ResolvedSource(source, split, "local-corpus", directory / f"{split}.jsonl", meta)
    path = Path(source).expanduser()
    if path.is_file():
        return ResolvedSource(source, split, _file_kind(path), path)
    if path.is_dir():
        for suffix in JSON_SUFFIXES + TEXT_SUFFIXES:
            f = path / f"{split}{suffix}"
            if f.is_file():
                return ResolvedSource(source, split, _file_kind(f), f)
        found = sorted(p.name for p in path.iterdir() if p.suffix in JSON_SUFFIXES + TEXT_SUFFIXES)
        raise ValueError(
            f"directory {str(path)!r} has no file for split {split!r}: expected {split}.jsonl, "
            f"{split}.json or {split}.txt (found: {', '.join(found) or 'none'})"
        )
    if path.exists():
        raise ValueError(f"source {source!r} is not a regular file or directory (a device, FIFO or socket)")
    if source.endswith(JSON_SUFFIXES + TEXT_SUFFIXES) or source.startswith((".", "/", "~")):
        raise ValueError(f"source {source!r} looks like a path, but no such file or directory exists")
    if _HUB_NAME.match(source):
        return ResolvedSource(source, split, "hub")
    raise ValueError(
        f"unknown source {source!r}: expected 'ultrachat' (the local chitchat corpus in UltraChat's schema), "
        f"an existing .jsonl/.json/.txt file or directory, or a hub name like {HUB_ULTRACHAT!r}"
    )


def load_conversations(
    source: str = "ultrachat", split: str = "train_sft", cache: str | Path | None = None
) -> Any:
    """The split as a ``datasets.Dataset`` of records (``messages`` or ``text``), via ``load_dataset``."""
    return load_resolved(resolve_source(source, split, cache), cache)


def load_resolved(src: ResolvedSource, cache: str | Path | None = None) -> Any:
    """``datasets.load_dataset`` for a :class:`ResolvedSource` (local ones cache under ``<cache>/datasets``)."""
    if src.kind == "hub":
        check_hub_reachable(src.source)
        datasets = require("datasets")
        try:
            return datasets.load_dataset(src.source, split=src.split)
        except ConnectionError as exc:
            raise HubUnavailableError(f"cannot load hub dataset {src.source!r}: {exc}") from exc
    datasets = require("datasets")
    hf_cache = str(cache_dir(cache) / "datasets")
    assert src.path is not None
    if src.kind != "local-corpus":  # a user's file: checked before datasets sees it
        check_local_file(src.path, src.kind)
    # datasets wants split names like ``train_sft``; any other name of a single file loads as ``train``.
    split = src.split if re.fullmatch(r"\w+", src.split) else "train"
    kw = {"sample_by": "paragraph"} if src.kind == "text" else {}
    builder = "text" if src.kind == "text" else "json"
    try:
        return datasets.load_dataset(
            builder, data_files={split: str(src.path)}, split=split, cache_dir=hf_cache, **kw
        )
    except Exception as exc:  # the file passed the check: whatever datasets raises is its verdict on it
        cause = exc.__cause__ if isinstance(exc, datasets.exceptions.DatasetGenerationError) else exc
        detail = " ".join(str(cause).split())[:300] or type(cause).__name__
        raise ValueError(
            f"datasets cannot load data file {str(src.path)!r}: {type(cause).__name__}: {detail}"
        ) from exc


def check_hub_reachable(name: str) -> None:
    """Raise :class:`HubUnavailableError` at once when offline, or when the hub's host does not answer."""
    hint = (
        "use source 'ultrachat' (the local chitchat corpus in UltraChat's schema) or a local "
        ".jsonl/.txt path instead"
    )
    reason = offline_reason()
    if reason is not None:
        raise HubUnavailableError(
            f"cannot load hub dataset {name!r}: offline mode is on ({reason}); {hint}, "
            "or unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE where the network allows"
        )
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT).close()
    except OSError as exc:
        raise HubUnavailableError(
            f"cannot load hub dataset {name!r}: the hub {host}:{port} is unreachable ({exc}); {hint}, "
            "or set HF_HUB_OFFLINE=1 to fail at once"
        ) from None


def _file_kind(path: Path) -> str:
    if path.suffix in JSON_SUFFIXES:
        return "json"
    if path.suffix in TEXT_SUFFIXES:
        return "text"
    raise ValueError(f"file {str(path)!r} has suffix {path.suffix!r}: expected .jsonl, .json or .txt")
