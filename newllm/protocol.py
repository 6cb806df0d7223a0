"""The CVFP model protocol: what the solver, the contraction toolkit, the diagnostics and
``newllm.testing`` need from a model (docs/verify.md).

A model is a ``torch.nn.Module`` (so ``train()``/``eval()``, ``.to(dtype)``, ``copy.deepcopy`` work) with

* ``embed(token_ids)``: int64 ids ``[...]`` (on the CPU) -> embeddings ``[..., E]`` on the model's device;
* ``step(token_emb, context)``: ``[..., E], [..., C] -> [..., C]``, one application of the context
  update; leading dims broadcast; inputs are not modified. It may take a keyword ``generator``
  (a ``torch.Generator``) for its dropout masks in train mode;
* ``initial_context(shape)``: the start context ``[*shape, C]`` on the model's device and dtype.

Optional: ``vocab_size`` (int): ids are validated against it (without it only integrality and
``id >= 0`` are checked, and ``newllm.testing`` needs explicit token ids).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from .tokens import as_token_tensor

#: The required methods and how the protocol spells them (for error messages).
METHODS = {
    "embed": "embed(token_ids)",
    "step": "step(token_emb, context)",
    "initial_context": "initial_context(shape)",
}


class ContextModel(Protocol):
    """Static type of a model satisfying the protocol (see the module doc)."""

    training: bool

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor: ...

    def step(self, token_emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor: ...

    def initial_context(self, shape: Sequence[int] | torch.Size) -> torch.Tensor: ...

    def train(self, mode: bool = True) -> ContextModel: ...

    def eval(self) -> ContextModel: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...


def missing(model: object) -> list[str]:
    """What ``model`` lacks of the protocol, in the protocol's words ([] when nothing)."""
    out = [] if isinstance(model, nn.Module) else ["a torch.nn.Module (train()/eval(), .to(dtype))"]
    out += [sig for name, sig in METHODS.items() if not callable(getattr(model, name, None))]
    v = getattr(model, "vocab_size", None)
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        out.append(f"vocab_size as a positive int (got {v!r})")
    return out


def require(model: object) -> None:
    """ValueError naming everything ``model`` lacks of the protocol."""
    lacks = missing(model)
    if lacks:
        raise ValueError(
            f"{type(model).__name__} does not satisfy the CVFP model protocol (docs/verify.md): "
            f"missing {'; '.join(lacks)}"
        )


def vocab_size(model: object) -> int | None:
    """The model's ``vocab_size`` attribute, or None when it has none."""
    v = getattr(model, "vocab_size", None)
    return v if isinstance(v, int) else None


def token_tensor(model: object, token_ids: torch.Tensor | Sequence[int] | int) -> torch.Tensor:
    """Validated int64 ids (against ``vocab_size`` when the model has one)."""
    return as_token_tensor(token_ids, vocab_size(model))


def accepts_generator(model: ContextModel) -> bool:
    """Whether ``model.step`` takes a ``generator`` keyword (or ``**kwargs``)."""
    try:
        params = inspect.signature(model.step).parameters
    except (TypeError, ValueError):
        return False
    return "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def step_fn(
    model: ContextModel, generator: torch.Generator | None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(token_emb, context) -> model.step(...)``, passing ``generator`` when given and accepted."""
    if generator is not None and accepts_generator(model):
        return lambda e, c: model.step(e, c, generator=generator)  # type: ignore[call-arg]
    return model.step
