"""Sampling text from a Phase 2 head: fixed-point contexts from the Phase 1 model, next token from the head.

``reset`` contexts (the seeds): the context of a position is the fixed point of its own token from zeros.
``carry``: the prompt is solved in order from zeros, and each new token starts from the previous
token's fixed point, exactly as the Phase 2 cache was built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..config import SolverConfig
from ..model import CVFPModel
from ..solve import solve
from .head import PredictionHead


def prompt_context(model: CVFPModel, prompt_ids: Sequence[int], solver: SolverConfig) -> torch.Tensor:
    """The context ``[C]`` at the last prompt token."""
    if len(prompt_ids) == 0:
        raise ValueError("the prompt must hold at least one token")
    ids = list(prompt_ids) if solver.context_mode == "carry" else [prompt_ids[-1]]
    return solve(model, ids, solver).context[-1]


def next_context(model: CVFPModel, token: int, previous: torch.Tensor, solver: SolverConfig) -> torch.Tensor:
    """The context ``[C]`` of a new token (from ``previous`` in carry mode, from zeros in reset mode)."""
    init = previous if solver.context_mode == "carry" else None
    return solve(model, [token], solver, init=init).context[0]


def pick(logits: torch.Tensor, *, greedy: bool, temperature: float, generator: torch.Generator | None) -> int:
    """Argmax (lowest id on ties) when ``greedy``, else a draw from ``softmax(logits / temperature)``."""
    if greedy:
        return int(logits.argmax())
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (or use greedy), got {temperature!r}")
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def generate_ids(
    model: CVFPModel,
    head: PredictionHead,
    prompt_ids: Sequence[int],
    solver: SolverConfig,
    *,
    max_new_tokens: int,
    greedy: bool = False,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    stop_ids: Sequence[int] = (),
) -> list[int]:
    """New token ids after ``prompt_ids`` (at most ``max_new_tokens``; stops after a token in ``stop_ids``)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if not greedy and not temperature > 0:
        raise ValueError(f"temperature must be > 0 (or use greedy), got {temperature!r}")
    head.eval()
    out: list[int] = []
    c = prompt_context(model, prompt_ids, solver) if max_new_tokens else None
    with torch.no_grad():
        for _ in range(max_new_tokens):
            tok = pick(head(c), greedy=greedy, temperature=temperature, generator=generator)
            out.append(tok)
            if tok in stop_ids or len(out) == max_new_tokens:
                break
            assert c is not None  # max_new_tokens > 0 inside the loop
            c = next_context(model, tok, c, solver)
    return out
