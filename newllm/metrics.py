"""Named per-token residuals between consecutive contexts, one registry for the whole project.

For a change ``d = new - old`` over the last dimension (size D):

=======  ===============================  ======================================
name     value                            notes
=======  ===============================  ======================================
``mse``  ``mean(d**2)``                   the seeds' Phase 1 training loss
``l2``   ``||d||_2``                      the metric the seeds first tested with
``rms``  ``sqrt(mse)``                    same units as the context entries
``rel``  ``||d||_2 / ||new||_2``          scale-free (TorchDEQ's ``rel``)
=======  ===============================  ======================================

Exact identities: ``l2**2 == D * mse`` and ``rms == sqrt(mse)`` (up to float rounding).
Convergence is decided by :func:`newllm.stop.stop` (the one stop rule), which compares a residual
from this registry with a threshold through :func:`below`; nothing else calls :func:`below`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Smallest denominator used by ``rel`` (a zero ``new`` gives ``||d|| / tiny``, never NaN from 0/0 unless d = 0).
_REL_FLOOR = 1e-30


def mse(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Mean over the last dim of the squared change: ``[..., D] -> [...]``."""
    return (new - old).pow(2).mean(dim=-1)


def l2(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last dim of the change: ``[..., D] -> [...]``."""
    return torch.linalg.vector_norm(new - old, dim=-1)


def rms(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Root mean square change (``sqrt(mse)``): ``[..., D] -> [...]``."""
    return mse(new, old).sqrt()


def rel(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Relative change ``||new - old|| / ||new||``: ``[..., D] -> [...]``."""
    num = torch.linalg.vector_norm(new - old, dim=-1)
    den = torch.linalg.vector_norm(new, dim=-1).clamp_min(_REL_FLOOR)
    return num / den


#: The one registry: name -> per-token residual function ``(new, old) -> [...]``.
METRICS: dict[str, Metric] = {"mse": mse, "l2": l2, "rms": rms, "rel": rel}
_BUILTIN: dict[str, Metric] = dict(METRICS)


def get(name: str) -> Metric:
    """The registered metric ``name`` (ValueError naming the valid ones otherwise)."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}") from None


def residual(name: str, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Per-token residual in metric ``name``: ``[..., D] -> [...]``."""
    return get(name)(new, old)


def all_residuals(new: torch.Tensor, old: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every registered metric at once, each ``[...]``.

    Bitwise equal to calling each metric: the built-in ones share the change ``new - old`` and its
    norm instead of recomputing them (the solver calls this once per iteration).
    """
    d = new - old
    sq = d.pow(2).mean(dim=-1)
    norm = torch.linalg.vector_norm(d, dim=-1)
    fast: dict[str, Callable[[], torch.Tensor]] = {
        "mse": lambda: sq,
        "l2": lambda: norm,
        "rms": sq.sqrt,
        "rel": lambda: norm / torch.linalg.vector_norm(new, dim=-1).clamp_min(_REL_FLOOR),
    }
    return {name: fast[name]() if _BUILTIN.get(name) is fn else fn(new, old) for name, fn in METRICS.items()}


def below(res: torch.Tensor, threshold: float) -> torch.Tensor:
    """The comparison behind every convergence decision: ``res < threshold`` (NaN -> False).
    Called only by :func:`newllm.stop.stop`."""
    return res < threshold


def convert_threshold(
    value: float, src: str, dst: str, dim: int, *, reference_norm: float | None = None
) -> float:
    """Convert a threshold between metrics for contexts of dimension ``dim``.

    ``mse``, ``l2`` and ``rms`` convert exactly (``l2 = sqrt(dim * mse)``, ``rms = sqrt(mse)``).
    ``rel`` needs ``reference_norm`` (``||f(c)||``; about ``sqrt(dim)`` for LayerNorm'd contexts).
    """
    get(src)
    get(dst)
    if not (isinstance(dim, int) and dim >= 1):
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"threshold must be finite and >= 0, got {value!r}")
    if "rel" in (src, dst) and src != dst and reference_norm is None:
        raise ValueError("converting to or from 'rel' needs reference_norm (||f(c)||, about sqrt(dim))")
    if src == dst:
        return float(value)
    l2_value = _to_l2(value, src, dim, reference_norm)
    return _from_l2(l2_value, dst, dim, reference_norm)


def _to_l2(value: float, src: str, dim: int, ref: float | None) -> float:
    if src == "l2":
        return value
    if src == "mse":
        return math.sqrt(dim * value)
    if src == "rms":
        return math.sqrt(dim) * value
    assert ref is not None
    return value * ref


def _from_l2(value: float, dst: str, dim: int, ref: float | None) -> float:
    if dst == "l2":
        return value
    if dst == "mse":
        return value * value / dim
    if dst == "rms":
        return value / math.sqrt(dim)
    assert ref is not None
    return value / ref
