"""ChatML formatting, tokenization, truncation and the assistant-only loss mask.

A dialogue is rendered as ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message and
tokenized piece by piece, so every token belongs to exactly one piece:

===========================  ==============================  ====
piece                        tokens                          mask
===========================  ==============================  ====
``<|im_start|>``             50257                           0
``{role}\\n``                 e.g. ``assistant\\n`` -> 562, 10167, 198   0
``{content}``                the content's GPT-2 tokens      1 if role is assistant, else 0
``<|im_end|>``               50258                           1 if role is assistant, else 0
``\\n``                       198                             0
===========================  ==============================  ====

So ``loss_mask[t] == 1`` exactly for the tokens a model should learn to produce as the assistant:
its content and the ``<|im_end|>`` that ends it (the header ``<|im_start|>assistant\\n`` is given at
generation time). The mask is aligned with ``input_ids``: for next-token prediction the target at
position ``t`` is ``input_ids[t]`` (predicted from positions ``< t``), counted when ``loss_mask[t] == 1``.
Content is tokenized with ``split_special_tokens=True``: a literal ``<|im_end|>`` typed inside a
message is ordinary text, never a marker. ``decode(input_ids)`` equals the rendered text. (Piecewise
tokens equal the tokenization of the whole string except when a content starts with two or more
whitespace characters, where GPT-2's pre-tokenizer would merge the header's ``\\n`` into them.)

Plain-text records (``{"text": ...}``) are tokenized as they are, without markers, mask all ones.
Truncation keeps the first ``max_length`` tokens (and their mask), possibly cutting a message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .records import check_messages, conversation_id
from .tokenizer import IM_END, IM_END_ID, IM_START, IM_START_ID

#: Default truncation length (the seeds truncate UltraChat to 512 tokens).
DEFAULT_MAX_LENGTH = 512
NEWLINE_ID = 198


@dataclass(frozen=True)
class EncodedConversation:
    """One tokenized conversation: ``input_ids`` and ``loss_mask`` have equal length."""

    id: str
    input_ids: list[int]
    loss_mask: list[int]
    #: Token count before truncation.
    full_length: int

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.input_ids)

    @property
    def num_loss_tokens(self) -> int:
        return sum(self.loss_mask)


def render_chatml(messages: Sequence[Mapping[str, str]]) -> str:
    """The ChatML text of a dialogue: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message."""
    return "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)


def check_max_length(max_length: int | None) -> int | None:
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
    ):
        raise ValueError(f"max_length must be a positive integer or None (no truncation), got {max_length!r}")
    return max_length


def encode_records(
    records: Iterable[Mapping[str, Any]], tokenizer: Any, max_length: int | None = DEFAULT_MAX_LENGTH
) -> list[EncodedConversation]:
    """Encode dialogue (``messages``) or plain-text (``text``) records; one batched tokenizer call."""
    check_max_length(max_length)
    plans: list[tuple[str, list[tuple[str, str]] | str]] = []
    texts: list[str] = []
    for n, rec in enumerate(records):
        cid = conversation_id(rec)
        if rec.get("messages") is not None:
            msgs = check_messages(rec, where=f"conversation {cid!r} (record {n})")
            plans.append((cid, [(m["role"], m["content"]) for m in msgs]))
            texts.extend(m["content"] for m in msgs)
        elif isinstance(rec.get("text"), str):
            plans.append((cid, rec["text"]))
            texts.append(rec["text"])
        else:
            raise ValueError(
                f"record {n} ({cid!r}) has neither 'messages' (a list of {{role, content}}) nor 'text' (a string)"
            )
    pieces = _encode_texts(tokenizer, texts)
    headers: dict[str, list[int]] = {}
    out: list[EncodedConversation] = []
    k = 0
    for cid, plan in plans:
        ids: list[int] = []
        mask: list[int] = []
        if isinstance(plan, str):
            ids = pieces[k]
            mask = [1] * len(ids)
            k += 1
        else:
            for role, _ in plan:
                if role not in headers:
                    headers[role] = _encode_texts(tokenizer, [f"{role}\n"])[0]
                body = pieces[k]
                k += 1
                a = 1 if role == "assistant" else 0
                ids += [IM_START_ID, *headers[role], *body, IM_END_ID, NEWLINE_ID]
                mask += [0] * (1 + len(headers[role])) + [a] * (len(body) + 1) + [0]
        full = len(ids)
        if max_length is not None:
            ids, mask = ids[:max_length], mask[:max_length]
        out.append(EncodedConversation(id=cid, input_ids=ids, loss_mask=mask, full_length=full))
    return out


def encode_conversation(
    record: Mapping[str, Any] | Sequence[Mapping[str, str]],
    tokenizer: Any,
    max_length: int | None = DEFAULT_MAX_LENGTH,
) -> EncodedConversation:
    """Encode one record, or a bare list of ``{role, content}`` messages."""
    if not isinstance(record, Mapping):
        record = {"messages": list(record)}
    return encode_records([record], tokenizer, max_length)[0]


def _encode_texts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    enc = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)
    return [list(x) for x in enc["input_ids"]]
