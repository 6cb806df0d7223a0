"""Train/validation split by conversation: no validation conversation leaks into training."""

import json
from dataclasses import dataclass

import pytest

from tests.data_support import require_data_packages

require_data_packages()

from newllm.data import load_samples, split_conversations  # noqa: E402
from newllm.data.chitchat import chitchat_corpus, corpus_meta  # noqa: E402


@dataclass
class Item:
    id: str
    n: int


def test_split_is_disjoint_complete_and_deterministic():
    items = [Item(f"c{i % 37}", i) for i in range(100)]  # 37 conversations, some in several pieces
    train, val = split_conversations(items, 0.2, seed=5)
    assert {x.id for x in train}.isdisjoint({x.id for x in val})
    assert sorted(x.n for x in train + val) == list(range(100))
    assert len({x.id for x in val}) == round(0.2 * 37)
    assert [x.n for x in train] == sorted(x.n for x in train)  # input order kept
    assert split_conversations(items, 0.2, seed=5) == (train, val)
    assert split_conversations(items, 0.2, seed=6) != (train, val)


def test_split_by_content_key():
    items = [Item("a", 1), Item("b", 1), Item("c", 2), Item("d", 3)]
    train, val = split_conversations(items, 0.5, key=lambda x: x.n)
    assert {x.n for x in train}.isdisjoint({x.n for x in val})


def test_split_of_plain_ids_and_bounds():
    train, val = split_conversations(["x", "y"], 0.01)
    assert len(train) == len(val) == 1
    train, val = split_conversations(["x", "y", "z"], 0.99)
    assert len(train) == 1 and len(val) == 2


@pytest.mark.parametrize(
    "items, frac, match",
    [
        (["a", "a"], 0.5, "at least 2 distinct conversations to split, got 1"),
        (["a", "b"], 0.0, r"val_fraction must be in \(0, 1\), got 0.0"),
        (["a", "b"], 1, r"val_fraction must be in \(0, 1\), got 1"),
    ],
)
def test_split_errors(items, frac, match):
    with pytest.raises(ValueError, match=match):
        split_conversations(items, frac)


def test_no_leak_on_real_samples(small_corpus, data_cache, tokenizer):
    s = load_samples(str(small_corpus), "train_sft", cache=data_cache, tokenizer=tokenizer)
    train, val = split_conversations(s.conversations, 0.1, seed=0)
    assert len(train) + len(val) == len(s) and val
    assert {c.id for c in train}.isdisjoint({c.id for c in val})
    assert {tuple(c.input_ids) for c in train}.isdisjoint({tuple(c.input_ids) for c in val})


def test_full_corpus_splits_do_not_leak(data_cache, tokenizer):
    """The whole chitchat corpus (about 3 s to build): the documented counts, and disjoint splits."""
    directory, _ = chitchat_corpus(data_cache)
    meta = corpus_meta(directory)
    assert (
        meta["raw"],
        meta["splits"]["train_sft"]["conversations"],
        meta["splits"]["test_sft"]["conversations"],
    ) == (
        7168,
        3612,
        401,
    )
    recs = {}
    for split in ("train_sft", "test_sft"):
        with open(directory / f"{split}.jsonl") as fh:
            recs[split] = [json.loads(line) for line in fh]
    ids = [{r["prompt_id"] for r in recs[s]} for s in recs]
    contents = [{json.dumps(r["messages"]) for r in recs[s]} for s in recs]
    assert ids[0].isdisjoint(ids[1]) and contents[0].isdisjoint(contents[1])
    # Phase 1's minimum: the first 100 train conversations give at least 30k tokens at length 512.
    s = load_samples("ultrachat", "train_sft", samples=100, cache=data_cache, tokenizer=tokenizer)
    assert s.num_tokens >= 30_000 and s.source.kind == "local-corpus"
