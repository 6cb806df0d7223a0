"""Fixtures of the data tests: a per-session cache, a small real chitchat corpus, the tokenizer."""

from __future__ import annotations

import pytest

from tests.data_support import SMALL_LIMIT


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory):
    """A fresh newllm cache directory for this test session (per xdist worker)."""
    return tmp_path_factory.mktemp("newllm-cache")


@pytest.fixture(scope="session")
def small_corpus(data_cache):
    """Directory with ``train_sft.jsonl``/``test_sft.jsonl`` from the first SMALL_LIMIT chitchat conversations."""
    from newllm.data.chitchat import chitchat_corpus

    return chitchat_corpus(data_cache, limit=SMALL_LIMIT)[0]


@pytest.fixture(scope="session")
def tokenizer(data_cache):
    from newllm.data import load_tokenizer

    return load_tokenizer(data_cache)
