"""``newllm generate``: sample text from a Phase 2 run (fixed-point contexts -> head -> next token).

Text is printed as it is generated (``--json``: one object at the end, progress on stderr)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

from ..phase2 import generate_ids, load_phase2
from ..phase2.trainer import phase2_solver
from . import args as A
from . import common
from .progress import Progress

NAME = "generate"
HELP = "sample text from a Phase 2 checkpoint (greedy or with a temperature)"

#: The most tokens one call generates.
MAX_NEW_TOKENS = 10_000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="Phase 2 run directory (from newllm phase2)")
    p.add_argument("--prompt", required=True, help="prompt text (UTF-8)")
    p.add_argument(
        "--chat",
        action="store_true",
        help="wrap the prompt as a ChatML user turn plus '<|im_start|>assistant\\n'; stop at <|im_end|>",
    )
    p.add_argument(
        "--max-new-tokens",
        type=A.integer(0, MAX_NEW_TOKENS),
        default=50,
        help=f"tokens to generate at most, up to {MAX_NEW_TOKENS} (default %(default)s)",
    )
    p.add_argument(
        "--temperature",
        type=A.number(0, 1000, lo_open=True),
        default=1.0,
        help="softmax temperature (default 1)",
    )
    p.add_argument("--greedy", action="store_true", help="always take the most probable token")
    p.add_argument("--seed", type=A.SEED, default=0, help="seed of the sampling generator (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (with --json)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


IGNORED = [
    A.Ignored(
        ("temperature", "seed"), lambda a: a.greedy, "with --greedy (it always takes the most probable token)"
    ),
]


def prompt_ids(tok, prompt: str, chat: bool) -> list[int]:
    from ..data import IM_START_ID, encode_conversation

    if not chat:
        return list(tok.encode(prompt, add_special_tokens=False))
    header = tok("assistant\n", add_special_tokens=False)["input_ids"]
    turn = encode_conversation([{"role": "user", "content": prompt}], tok, max_length=None).input_ids
    return [*turn, IM_START_ID, *header]


class TextStream:
    """Prints the decoded text of the tokens given so far as it grows (a character whose UTF-8 bytes are
    split over tokens waits for its last token)."""

    def __init__(self, tok: Any, out: Any = None):
        self.tok, self.out = tok, out or sys.stdout
        self.ids: list[int] = []
        self.shown = ""

    def __call__(self, token: int) -> None:
        self.ids.append(token)
        text = self.tok.decode(self.ids)
        if not text.endswith("\ufffd") and text.startswith(self.shown):
            self.out.write(text[len(self.shown) :])
            self.out.flush()
            self.shown = text

    def close(self) -> str:
        """Print what is left and the final newline; returns the whole text."""
        text = self.tok.decode(self.ids)
        self.out.write((text[len(self.shown) :] if text.startswith(self.shown) else "") + "\n")
        self.out.flush()
        return text


def run(args: argparse.Namespace) -> int:
    from ..data import IM_END_ID, load_tokenizer

    model, head, state = load_phase2(args.checkpoint)
    tok = load_tokenizer()
    ids = prompt_ids(tok, args.prompt, args.chat)
    if not ids:
        raise ValueError("--prompt encodes to no tokens")
    solver = phase2_solver(state)
    with Progress("generate", enabled=args.json and not args.quiet, unit="tok") as progress:
        stream = None if args.json else TextStream(tok)
        done = [0]

        def on_token(t: int) -> None:
            done[0] += 1
            progress(done[0], args.max_new_tokens, "tokens")
            if stream is not None:
                stream(t)

        new = generate_ids(
            model,
            head,
            ids,
            solver,
            max_new_tokens=args.max_new_tokens,
            greedy=args.greedy,
            temperature=args.temperature,
            generator=torch.Generator().manual_seed(args.seed),
            stop_ids=(IM_END_ID,) if args.chat else (),
            on_token=on_token,
        )
    if stream is not None:
        stream.close()
        return 0
    common.print_json(
        {
            "checkpoint": args.checkpoint,
            "prompt": args.prompt,
            "chat": args.chat,
            "prompt_ids": ids,
            "new_ids": new,
            "text": tok.decode(new),
            "context_mode": state["context_mode"],
            "greedy": args.greedy,
            "temperature": None if args.greedy else args.temperature,
            "seed": args.seed,
        }
    )
    return 0
