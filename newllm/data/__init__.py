"""Real dialogue data for newllm (the ``data`` extra): sources, the GPT-2 + ChatML tokenizer, the
ChatML encoding with an assistant-only loss mask, training samples and a leak-free split.

Importing this package is cheap: ``datasets`` and ``transformers`` are imported on first use.
"""

from .chatml import (
    DEFAULT_MAX_LENGTH,
    EncodedConversation,
    encode_conversation,
    encode_records,
    render_chatml,
)
from .chitchat import chitchat_corpus
from .records import ROLES, conversation_id
from .samples import Samples, load_samples
from .source import HUB_ULTRACHAT, HubUnavailableError, load_conversations, resolve_source
from .split import split_conversations
from .tokenizer import IM_END, IM_END_ID, IM_START, IM_START_ID, VOCAB_SIZE, load_tokenizer

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "EncodedConversation",
    "HUB_ULTRACHAT",
    "HubUnavailableError",
    "IM_END",
    "IM_END_ID",
    "IM_START",
    "IM_START_ID",
    "ROLES",
    "Samples",
    "VOCAB_SIZE",
    "chitchat_corpus",
    "conversation_id",
    "encode_conversation",
    "encode_records",
    "load_conversations",
    "load_samples",
    "load_tokenizer",
    "render_chatml",
    "resolve_source",
    "split_conversations",
]
