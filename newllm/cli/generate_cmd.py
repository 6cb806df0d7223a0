"""``newllm generate``: sample text from a Phase 2 run (fixed-point contexts -> head -> next token)."""

from __future__ import annotations

import argparse

import torch

from ..phase2 import generate_ids, load_phase2
from ..phase2.trainer import phase2_solver
from . import common

NAME = "generate"
HELP = "sample text from a Phase 2 checkpoint (greedy or with a temperature)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="Phase 2 run directory (from newllm phase2)")
    p.add_argument("--prompt", required=True, help="prompt text")
    p.add_argument(
        "--chat",
        action="store_true",
        help="wrap the prompt as a ChatML user turn plus '<|im_start|>assistant\\n'; stop at <|im_end|>",
    )
    p.add_argument(
        "--max-new-tokens", type=int, default=50, help="tokens to generate at most (default %(default)s)"
    )
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1)")
    p.add_argument("--greedy", action="store_true", help="always take the most probable token")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling generator (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def prompt_ids(tok, prompt: str, chat: bool) -> list[int]:
    from ..data import IM_START_ID, encode_conversation

    if not chat:
        return list(tok.encode(prompt, add_special_tokens=False))
    header = tok("assistant\n", add_special_tokens=False)["input_ids"]
    turn = encode_conversation([{"role": "user", "content": prompt}], tok, max_length=None).input_ids
    return [*turn, IM_START_ID, *header]


def run(args: argparse.Namespace) -> int:
    from ..data import IM_END_ID, load_tokenizer

    if args.max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    if not args.greedy and not args.temperature > 0:
        raise ValueError(f"--temperature must be > 0 (or pass --greedy), got {args.temperature}")
    model, head, state = load_phase2(args.checkpoint)
    tok = load_tokenizer()
    ids = prompt_ids(tok, args.prompt, args.chat)
    if not ids:
        raise ValueError("--prompt encodes to no tokens")
    solver = phase2_solver(state)
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
    )
    text = tok.decode(new)
    if args.json:
        common.print_json(
            {
                "checkpoint": args.checkpoint,
                "prompt": args.prompt,
                "chat": args.chat,
                "prompt_ids": ids,
                "new_ids": new,
                "text": text,
                "context_mode": state["context_mode"],
                "greedy": args.greedy,
                "temperature": None if args.greedy else args.temperature,
                "seed": args.seed,
            }
        )
    else:
        print(text)
    return 0
