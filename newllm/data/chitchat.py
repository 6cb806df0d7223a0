"""The offline default corpus: the ``chitchat-dataset`` package's human conversations in UltraChat's schema.

Each record is ``{"prompt", "prompt_id", "messages": [{"role", "content"}, ...]}`` as in
``HuggingFaceH4/ultrachat_200k``. Mapping from a chitchat conversation:

- utterances are stripped; empty ones are dropped; consecutive utterances of one sender form one
  message, joined with ``"\\n"``;
- the sender of the first message is ``user``, the other sender ``assistant`` (so roles alternate,
  starting with ``user``);
- conversations with fewer than two messages (nobody replied: no assistant turn) are dropped, and
  exact duplicates (same messages) are kept once, under the smallest chitchat id;
- ``prompt_id`` is the chitchat conversation id (a UUID), ``prompt`` the first user message
  (UltraChat's ``prompt`` is its first user message too; chitchat's own topic prompt is not kept).

The split is by conversation: the kept ids, sorted, are shuffled with ``random.Random(seed)``; the
first ``round(test_fraction * n)`` form ``test_sft``, the rest ``train_sft`` (both in that shuffled order).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from ._deps import require
from .store import build_once, cache_dir, file_sha256, text_sha256

#: Bump when the conversion or the file layout changes: it is part of the cache key.
BUILD_VERSION = 1
SPLITS = ("train_sft", "test_sft")
DEFAULT_SEED = 0
#: UltraChat's test_sft / (train_sft + test_sft) = 23,110 / 230,975 = 10.0%.
DEFAULT_TEST_FRACTION = 0.1


def chitchat_json() -> Path:
    """Path of the ``dataset.json`` shipped inside the installed ``chitchat_dataset`` package."""
    mod = require("chitchat_dataset")
    path = Path(str(mod.__file__)).resolve().parent / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"chitchat_dataset is installed but has no data file at {path}")
    return path


def convert_conversation(conv_id: str, conv: dict[str, Any]) -> dict[str, Any] | None:
    """One chitchat conversation as an UltraChat record, or None when it has fewer than two messages."""
    turns: list[tuple[str, list[str]]] = []
    for turn in conv["messages"]:
        for utt in turn:
            text = utt["text"].strip()
            if not text:
                continue
            if turns and turns[-1][0] == utt["sender"]:
                turns[-1][1].append(text)
            else:
                turns.append((utt["sender"], [text]))
    senders = list(dict.fromkeys(s for s, _ in turns))
    if len(senders) > 2:
        raise ValueError(f"chitchat conversation {conv_id!r} has {len(senders)} senders, expected at most 2")
    if len(turns) < 2:
        return None
    messages = [
        {"role": "user" if s == senders[0] else "assistant", "content": "\n".join(texts)}
        for s, texts in turns
    ]
    return {"prompt": messages[0]["content"], "prompt_id": conv_id, "messages": messages}


def convert_all(raw: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """All kept records (sorted by id, duplicates removed) and counts of what was dropped."""
    records: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    single = dups = 0
    for conv_id in sorted(raw):
        rec = convert_conversation(conv_id, raw[conv_id])
        if rec is None:
            single += 1
            continue
        key = json.dumps(rec["messages"], sort_keys=True)
        if key in seen:
            dups += 1
            continue
        seen.add(key)
        records[conv_id] = rec
    stats = {"raw": len(raw), "dropped_single_speaker": single, "dropped_duplicates": dups}
    return list(records.values()), stats


def split_records(
    records: list[dict[str, Any]], seed: int, test_fraction: float
) -> dict[str, list[dict[str, Any]]]:
    """``{"train_sft": [...], "test_sft": [...]}``: a seeded split by conversation id (see module doc)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    by_id = {r["prompt_id"]: r for r in records}
    if len(by_id) != len(records):
        raise ValueError("conversation ids must be unique before splitting")
    ids = sorted(by_id)
    random.Random(seed).shuffle(ids)
    n_test = round(test_fraction * len(ids))
    return {"test_sft": [by_id[i] for i in ids[:n_test]], "train_sft": [by_id[i] for i in ids[n_test:]]}


def _write_corpus(
    dest: Path, source: Path, source_sha: str, seed: int, test_fraction: float, limit: int | None
) -> None:
    t0 = time.perf_counter()
    with open(source, encoding="utf-8") as fh:
        raw = json.load(fh)
    if limit is not None:
        raw = dict(list(raw.items())[:limit])
    records, stats = convert_all(raw)
    splits = split_records(records, seed, test_fraction)
    meta: dict[str, Any] = {
        "build_version": BUILD_VERSION,
        "source": "chitchat-dataset",
        "source_sha256": source_sha,
        "limit": limit,
        "seed": seed,
        "test_fraction": test_fraction,
        **stats,
        "splits": {},
    }
    for name, recs in splits.items():
        with open(dest / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for rec in recs:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        meta["splits"][name] = {
            "conversations": len(recs),
            "messages": sum(len(r["messages"]) for r in recs),
            "characters": sum(len(m["content"]) for r in recs for m in r["messages"]),
        }
    meta["build_seconds"] = time.perf_counter() - t0
    (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def chitchat_corpus(
    cache: str | Path | None = None,
    *,
    seed: int = DEFAULT_SEED,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    limit: int | None = None,
) -> tuple[Path, bool]:
    """Directory holding ``train_sft.jsonl``, ``test_sft.jsonl`` and ``meta.json``, built on first use.

    It lives at ``<cache>/corpora/chitchat-ultrachat-<key>``; the key hashes :data:`BUILD_VERSION`,
    the SHA-256 of chitchat's ``dataset.json``, ``seed``, ``test_fraction`` and ``limit`` (use only
    the first ``limit`` raw conversations, for tests). Returns ``(directory, built_now)``.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    source = chitchat_json()
    sha = file_sha256(source)
    key = text_sha256(str(BUILD_VERSION), sha, str(seed), repr(float(test_fraction)), str(limit))[:16]
    final = cache_dir(cache) / "corpora" / f"chitchat-ultrachat-{key}"
    return build_once(final, lambda tmp: _write_corpus(tmp, source, sha, seed, test_fraction, limit))


def corpus_meta(directory: Path) -> dict[str, Any]:
    """The ``meta.json`` of a built corpus directory."""
    return json.loads((Path(directory) / "meta.json").read_text())
