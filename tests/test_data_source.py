"""Sources through ``datasets.load_dataset``: the chitchat corpus, local JSONL and text, the hub offline."""

import json
import time

import pytest

from tests.data_support import SMALL_LIMIT, require_data_packages

require_data_packages()

from newllm.data import HubUnavailableError, load_conversations, load_samples  # noqa: E402
from newllm.data.chitchat import chitchat_corpus, convert_conversation, corpus_meta  # noqa: E402


def read_jsonl(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def utt(text, sender):
    return {"text": text, "sender": sender, "timestamp": "t"}


def test_convert_maps_speakers_to_alternating_roles():
    conv = {
        "messages": [
            [utt("Hello", "A"), utt("  How are you? ", "A")],
            [utt("fine", "B")],
            [utt("   ", "A")],  # empty: dropped, so B's next turn joins B's previous one
            [utt("you?", "B")],
            [utt("good", "A")],
        ]
    }
    rec = convert_conversation("c1", conv)
    assert rec == {
        "prompt": "Hello\nHow are you?",
        "prompt_id": "c1",
        "messages": [
            {"role": "user", "content": "Hello\nHow are you?"},
            {"role": "assistant", "content": "fine\nyou?"},
            {"role": "user", "content": "good"},
        ],
    }
    assert convert_conversation("c2", {"messages": [[utt("anyone?", "A")], [utt("hello?", "A")]]}) is None
    with pytest.raises(ValueError, match="'c3' has 3 senders"):
        convert_conversation("c3", {"messages": [[utt("a", "A")], [utt("b", "B")], [utt("c", "C")]]})


def test_small_corpus_schema_and_split(small_corpus):
    meta = corpus_meta(small_corpus)
    train, test = read_jsonl(small_corpus / "train_sft.jsonl"), read_jsonl(small_corpus / "test_sft.jsonl")
    assert meta["raw"] == SMALL_LIMIT and meta["splits"]["train_sft"]["conversations"] == len(train)
    assert len(train) + len(test) == SMALL_LIMIT - meta["dropped_single_speaker"] - meta["dropped_duplicates"]
    assert len(test) == round(0.1 * (len(train) + len(test)))
    for rec in train + test:
        assert set(rec) == {"prompt", "prompt_id", "messages"}
        roles = [m["role"] for m in rec["messages"]]
        assert len(roles) >= 2 and roles == ["user", "assistant"] * (len(roles) // 2) + ["user"] * (
            len(roles) % 2
        )
        assert rec["prompt"] == rec["messages"][0]["content"] and all(m["content"] for m in rec["messages"])
    ids = lambda recs: {r["prompt_id"] for r in recs}  # noqa: E731
    contents = lambda recs: {json.dumps(r["messages"]) for r in recs}  # noqa: E731
    assert not ids(train) & ids(test) and not contents(train) & contents(test)
    assert len(ids(train + test)) == len(train + test)


def test_corpus_is_built_once_and_deterministic(small_corpus, data_cache, tmp_path):
    again, built = chitchat_corpus(data_cache, limit=SMALL_LIMIT)
    assert again == small_corpus and not built
    other, built = chitchat_corpus(tmp_path, limit=SMALL_LIMIT)
    assert built and other.name == small_corpus.name
    for f in ("train_sft.jsonl", "test_sft.jsonl"):
        assert (other / f).read_bytes() == (small_corpus / f).read_bytes()
    reseeded, _ = chitchat_corpus(tmp_path, limit=SMALL_LIMIT, seed=1)
    assert (
        reseeded != other
        and (reseeded / "test_sft.jsonl").read_bytes() != (other / "test_sft.jsonl").read_bytes()
    )
    assert not list(tmp_path.glob("corpora/.*.tmp"))


def test_end_to_end_through_load_dataset_json(small_corpus, data_cache, tokenizer):
    ds = load_conversations(str(small_corpus), "test_sft", cache=data_cache)
    assert ds.column_names == ["prompt", "prompt_id", "messages"] and ds.split == "test_sft"
    assert ds.to_list() == read_jsonl(small_corpus / "test_sft.jsonl")
    s = load_samples(
        str(small_corpus), "train_sft", samples=5, max_length=64, cache=data_cache, tokenizer=tokenizer
    )
    assert s.ids == [r["prompt_id"] for r in read_jsonl(small_corpus / "train_sft.jsonl")[:5]]
    assert len(s.input_ids) == 5 and all(len(x) <= 64 and x[0] == 50257 for x in s.input_ids)
    assert [len(m) for m in s.loss_masks] == [len(x) for x in s.input_ids]
    assert (
        s.num_tokens == sum(map(len, s.input_ids))
        and s.available == corpus_meta(small_corpus)["splits"]["train_sft"]["conversations"]
    )


def test_seeded_sample_choice(small_corpus, data_cache, tokenizer):
    kw = dict(samples=4, cache=data_cache, tokenizer=tokenizer)
    a = load_samples(str(small_corpus), "train_sft", seed=3, **kw)
    b = load_samples(str(small_corpus), "train_sft", seed=3, **kw)
    c = load_samples(str(small_corpus), "train_sft", seed=None, **kw)
    assert a.ids == b.ids and a.input_ids == b.input_ids and a.ids != c.ids


def test_samples_beyond_the_split_are_rejected(small_corpus, data_cache, tokenizer):
    with pytest.raises(
        ValueError, match=r"samples=100000 but split 'test_sft' .* has only \d+ conversations"
    ):
        load_samples(str(small_corpus), "test_sft", samples=100_000, cache=data_cache, tokenizer=tokenizer)


def test_local_jsonl_file(tmp_path, data_cache, tokenizer):
    path = tmp_path / "mine.jsonl"
    rows = [
        {
            "prompt_id": "a",
            "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello world"}],
        },
        {
            "prompt_id": "b",
            "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = load_samples(str(path), cache=data_cache, tokenizer=tokenizer)
    assert s.ids == ["a", "b"] and s.source.kind == "json"
    assert (
        tokenizer.decode([i for i, m in zip(s.input_ids[0], s.loss_masks[0], strict=True) if m])
        == "Hello world<|im_end|>"
    )
    assert sum(s.loss_masks[1]) == 0


def test_text_files_by_paragraph(tmp_path, data_cache, tokenizer):
    (tmp_path / "train.txt").write_text("Hello world\nsecond line\n\nAnother paragraph.\n")
    s = load_samples(str(tmp_path), "train", cache=data_cache, tokenizer=tokenizer)
    assert s.source.kind == "text" and len(s) == 2
    assert tokenizer.decode(s.input_ids[0]) == "Hello world\nsecond line"
    assert s.input_ids[0][:2] == [15496, 995] and all(s.loss_masks[0])
    with pytest.raises(
        ValueError, match=r"no file for split 'test_sft': expected test_sft.jsonl.*found: train.txt"
    ):
        load_conversations(str(tmp_path), "test_sft", cache=data_cache)


@pytest.mark.parametrize(
    "source, match",
    [
        ("nope", "unknown source 'nope': expected 'ultrachat'"),
        ("missing.jsonl", "looks like a path, but no such file"),
        ("", "non-empty string"),
    ],
)
def test_bad_sources(source, match):
    with pytest.raises(ValueError, match=match):
        load_conversations(source)


def test_bad_suffix_and_split(tmp_path):
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(ValueError, match="suffix '.csv': expected .jsonl, .json or .txt"):
        load_conversations(str(tmp_path / "x.csv"))
    with pytest.raises(ValueError, match="split 'train' does not exist in source 'ultrachat'"):
        load_conversations("ultrachat", "train")


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_hub_name_offline_fails_at_once(monkeypatch, var):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv(var, "1")
    t0 = time.perf_counter()
    with pytest.raises(
        HubUnavailableError,
        match=rf"'HuggingFaceH4/ultrachat_200k': offline mode is on \({var}=1\); use source 'ultrachat'",
    ):
        load_conversations("HuggingFaceH4/ultrachat_200k")
    assert time.perf_counter() - t0 < 1.0


def test_unreachable_hub_fails_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once
    t0 = time.perf_counter()
    with pytest.raises(HubUnavailableError, match=r"'org/data': the hub 127.0.0.1:9 is unreachable"):
        load_conversations("org/data")
    assert time.perf_counter() - t0 < 6.0
