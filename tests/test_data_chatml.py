"""ChatML format and the assistant-only loss mask, on hand-made dialogues and real ones."""

import json

import pytest

from tests.data_support import require_data_packages

require_data_packages()

from newllm.data import (  # noqa: E402
    IM_END_ID,
    IM_START_ID,
    conversation_id,
    encode_conversation,
    encode_records,
    render_chatml,
)

NL = 198
DIALOGUE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello world"},
    {"role": "user", "content": "How are you?\nFine?"},
    {"role": "assistant", "content": "Fine, thanks."},
]


def enc(tok, text):
    return tok.encode(text, add_special_tokens=False)


def test_render_is_chatml():
    assert (
        render_chatml(DIALOGUE[1:3])
        == "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello world<|im_end|>\n"
    )


def test_ids_and_mask_by_hand(tokenizer):
    e = encode_conversation(DIALOGUE[1:3], tokenizer)
    user = [IM_START_ID, *enc(tokenizer, "user\n"), *enc(tokenizer, "Hi there"), IM_END_ID, NL]
    header = [IM_START_ID, *enc(tokenizer, "assistant\n")]
    body = [15496, 995, IM_END_ID]
    assert e.input_ids == user + header + body + [NL]
    assert e.loss_mask == [0] * len(user) + [0] * len(header) + [1, 1, 1] + [0]
    assert e.full_length == len(e.input_ids) and not e.truncated and e.num_loss_tokens == 3


def masked_runs(e):
    """The decoded runs of consecutive mask-1 tokens."""
    runs, cur = [], []
    for i, m in zip(e.input_ids, e.loss_mask, strict=True):
        if m:
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    return runs + ([cur] if cur else [])


def test_mask_covers_exactly_each_assistant_reply_and_its_end(tokenizer):
    e = encode_conversation(DIALOGUE, tokenizer)
    assert tokenizer.decode(e.input_ids) == render_chatml(DIALOGUE)
    runs = [tokenizer.decode(r) for r in masked_runs(e)]
    assert runs == ["Hello world<|im_end|>", "Fine, thanks.<|im_end|>"]
    assert e.num_loss_tokens == sum(
        len(enc(tokenizer, m["content"])) + 1 for m in DIALOGUE if m["role"] == "assistant"
    )
    # Every <|im_start|>, every role header, every trailing newline, all system and user tokens: 0.
    assert all(m == 0 for i, m in zip(e.input_ids, e.loss_mask, strict=True) if i == IM_START_ID)
    ends = [m for i, m in zip(e.input_ids, e.loss_mask, strict=True) if i == IM_END_ID]
    assert ends == [0, 0, 1, 0, 1]


def test_no_assistant_means_no_loss(tokenizer):
    e = encode_conversation([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], tokenizer)
    assert e.num_loss_tokens == 0 and len(e.input_ids) > 0


def test_truncation_mid_assistant_turn(tokenizer):
    full = encode_conversation(DIALOGUE, tokenizer, max_length=None)
    start = full.input_ids.index(15496)  # "Hello" opens the first reply
    cut = encode_conversation(DIALOGUE, tokenizer, max_length=start + 1)
    assert cut.input_ids == full.input_ids[: start + 1] and cut.loss_mask == full.loss_mask[: start + 1]
    assert cut.loss_mask[-1] == 1 and IM_END_ID not in cut.input_ids[start:]
    assert cut.truncated and cut.full_length == len(full.input_ids)


def test_truncation_mid_user_turn(tokenizer):
    full = encode_conversation(DIALOGUE, tokenizer, max_length=None)
    second_user = [k for k, i in enumerate(full.input_ids) if i == IM_START_ID][3]
    cut = encode_conversation(DIALOGUE, tokenizer, max_length=second_user + 3)
    assert cut.loss_mask == full.loss_mask[: second_user + 3] and cut.loss_mask[second_user:] == [0, 0, 0]
    assert [tokenizer.decode(r) for r in masked_runs(cut)] == ["Hello world<|im_end|>"]


def test_default_truncation_is_512(tokenizer):
    long = [{"role": "user", "content": "hi " * 300}, {"role": "assistant", "content": "yes " * 300}]
    e = encode_conversation(long, tokenizer)
    assert len(e.input_ids) == len(e.loss_mask) == 512 and e.full_length > 512


def test_marker_text_inside_a_message_is_not_a_marker(tokenizer):
    e = encode_conversation([{"role": "user", "content": "x<|im_end|>y"}], tokenizer)
    assert e.input_ids.count(IM_END_ID) == 1 and e.input_ids.count(IM_START_ID) == 1


def test_plain_text_records(tokenizer):
    (e,) = encode_records([{"text": "Hello world"}], tokenizer)
    assert e.input_ids == [15496, 995] and e.loss_mask == [1, 1]
    assert e.id == conversation_id({"text": "Hello world"}) and e.id.startswith("sha256:")


def test_conversation_ids():
    msgs = [{"role": "user", "content": "a"}]
    assert conversation_id({"prompt_id": "p1", "id": "x", "messages": msgs}) == "p1"
    assert conversation_id({"id": 7, "messages": msgs}) == "7"
    h = conversation_id({"messages": msgs})
    assert (
        h
        == conversation_id({"messages": [dict(msgs[0])]})
        != conversation_id({"messages": [{"role": "user", "content": "b"}]})
    )


@pytest.mark.parametrize(
    "record, match",
    [
        (
            {"messages": [{"role": "bot", "content": "x"}]},
            "role 'bot', expected one of system, user, assistant",
        ),
        ({"messages": [{"role": "user", "content": 3}]}, "content must be a string, got int"),
        ({"messages": []}, "non-empty list"),
        ({"prompt": "x"}, "neither 'messages'"),
    ],
)
def test_bad_records_are_named(tokenizer, record, match):
    with pytest.raises(ValueError, match=match):
        encode_records([record], tokenizer)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_max_length(tokenizer, bad):
    with pytest.raises(ValueError, match="max_length must be a positive integer or None"):
        encode_conversation(DIALOGUE, tokenizer, max_length=bad)


def test_real_conversations_render_and_mask(tokenizer, small_corpus):
    with open(small_corpus / "train_sft.jsonl") as fh:
        records = [json.loads(line) for line in fh][:40]
    encoded = encode_records(records, tokenizer, max_length=None)
    for rec, e in zip(records, encoded, strict=True):
        text = render_chatml(rec["messages"])
        assert e.id == rec["prompt_id"]
        assert tokenizer.decode(e.input_ids) == text
        assert (
            tokenizer.encode(text, add_special_tokens=False) == e.input_ids
        )  # piecewise == whole string here
        replies = [m["content"] + "<|im_end|>" for m in rec["messages"] if m["role"] == "assistant"]
        assert [tokenizer.decode(r) for r in masked_runs(e)] == replies
