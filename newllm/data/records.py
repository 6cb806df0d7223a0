"""The record schema shared by every source, and the conversation id of a record.

A dialogue record has ``messages: [{"role", "content"}, ...]`` (UltraChat's schema; ``prompt`` and
``prompt_id`` optional); a plain-text record has ``text``. Roles are ``system``, ``user``, ``assistant``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .store import text_sha256

ROLES = ("system", "user", "assistant")
_INT64 = (-(2**63), 2**63 - 1)


def conversation_id(record: Mapping[str, Any]) -> str:
    """``prompt_id``, else ``id``, else ``"sha256:"`` + the first 16 hex digits of the content's hash.

    The hash covers the messages (roles and contents) or the text, so equal content gets equal ids.
    """
    for key in ("prompt_id", "id"):
        value = record.get(key)
        if value is not None and str(value) != "":
            return str(value)
    if record.get("messages") is not None:
        body = json.dumps([[m.get("role"), m.get("content")] for m in record["messages"]], ensure_ascii=False)
    else:
        body = str(record.get("text"))
    return "sha256:" + text_sha256(body)[:16]


def check_record(record: Any, where: str = "record") -> None:
    """ValueError naming ``where`` unless ``record`` is a dialogue record (``messages``, see
    :func:`check_messages`) or a plain-text record (``text``: a string); ``prompt_id``/``id``, when
    present, must be a string or an integer."""
    if not isinstance(record, Mapping):
        raise ValueError(
            f"{where}: expected a JSON object with 'messages' or 'text', got {type(record).__name__}"
        )
    for key in ("prompt_id", "id"):
        value = record.get(key)
        if value is None or isinstance(value, str):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f"{where}: {key!r} must be a string or a 64-bit integer, got {value!r:.80}")
    if record.get("messages") is not None:
        check_messages(record, where)
    elif not isinstance(record.get("text"), str):
        raise ValueError(
            f"{where}: has neither 'messages' (a non-empty list of {{role, content}}) nor 'text' (a string); "
            f"keys: {', '.join(map(repr, sorted(map(str, record)))) or 'none'}"
        )


def check_messages(record: Mapping[str, Any], where: str = "record") -> list[dict[str, str]]:
    """The record's messages as ``[{"role", "content"}]``; ValueError naming the record and message otherwise."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError(
            f"{where}: 'messages' must be a non-empty list of {{role, content}}, got {messages!r:.80}"
        )
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise ValueError(f"{where}: messages[{i}] must be a mapping with role and content, got {m!r:.80}")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ValueError(f"{where}: messages[{i}] has role {role!r}, expected one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValueError(f"{where}: messages[{i}] content must be a string, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    return out
