"""``Estimate``: per-token values of one contraction quantity, labelled with what they are."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

#: ``lower_bound``: never above the true value (up to float rounding); ``estimate``: may err either
#: way; ``exact``: computed from the full Jacobian (exact up to float rounding).
KINDS = ("lower_bound", "estimate", "exact")


@dataclass
class Estimate:
    """``values [N]`` (float64, one per token/row) of quantity ``name`` computed by ``method``.

    ``kind`` is one of :data:`KINDS`. ``details`` holds method-specific extras (iterations used,
    convergence flags, ...), JSON-ready or tensors ``[N]``.
    """

    name: str
    kind: str
    method: str
    values: torch.Tensor
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        self.values = self.values.detach().reshape(-1).to(torch.float64).cpu()

    @property
    def max(self) -> float:
        """Largest value (NaN when every value is NaN)."""
        v = self.values[~torch.isnan(self.values)]
        return float(v.max()) if v.numel() else math.nan

    @property
    def median(self) -> float:
        """Lower median of the non-NaN values (``torch.median`` convention)."""
        v = self.values[~torch.isnan(self.values)]
        return float(v.median()) if v.numel() else math.nan

    def fraction_below(self, bound: float) -> float:
        """Fraction of tokens whose value is strictly below ``bound`` (NaN counts as not below)."""
        return float((self.values < bound).double().mean())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: name, kind, method, ``values`` list, ``max``, ``median``, details."""
        details = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in self.details.items()}
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "values": self.values.tolist(),
            "max": self.max,
            "median": self.median,
            **details,
        }
