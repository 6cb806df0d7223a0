"""Batched fixed-point solvers on rows ``z [N, D] -> f(z) [N, D]``, and their registry.

Generic over the map, so the same loop serves the model (:func:`newllm.solve`) and known-answer
maps in the tests. ``fn(z, rows)`` gets the iterates of the still-active rows and their indices
(``rows`` is None when every row is active) and returns ``f`` of those rows. No Python loop over rows.

Per row, iteration ``k`` (1-based) evaluates ``f(z_k)`` and the residual between ``f(z_k)`` and ``z_k``
in every registered metric; :func:`newllm.stop.stop` decides the row's status. A converged row keeps
``f(z_k)`` as its context, a non-finite one its last finite iterate.

:data:`SOLVERS` maps a method name (``SolverConfig.method``) to ``solver(fn, book)``; add one with
:func:`register`. Built in: ``picard`` (``z <- z + beta (f(z) - z)``), ``anderson`` (type II) and
``broyden`` (limited-memory good Broyden), ``hybrid`` (Anderson, Broyden for rows that stall) and
``newton`` (exact-Jacobian Newton, for refinement).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .anderson import anderson
from .broyden import broyden
from .hybrid import hybrid
from .newton import newton
from .picard import picard
from .rows import RowBook, RowMap

if TYPE_CHECKING:
    from ..config import SolverConfig
    from ..result import FixedPointResult

#: ``solver(fn, book)``: iterate ``fn`` on ``book``'s active rows until none is left or the budget ends.
Solver = Callable[[RowMap, RowBook], None]

#: The one solver registry: method name -> implementation.
SOLVERS: dict[str, Solver] = {"picard": picard, "anderson": anderson, "broyden": broyden, "hybrid": hybrid, "newton": newton}


def register(name: str, solver: Solver) -> None:
    """Add ``solver`` under ``name`` (then valid as ``SolverConfig(method=name)``)."""
    if not name.isidentifier() or name in SOLVERS:
        raise ValueError(f"solver name {name!r} must be a new identifier (taken: {', '.join(SOLVERS)})")
    SOLVERS[name] = solver


def get(name: str) -> Solver:
    """The registered solver ``name`` (ValueError naming the valid ones otherwise)."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver method {name!r}; expected one of {', '.join(SOLVERS)}") from None


def iterate(fn: RowMap, z0: torch.Tensor, config: SolverConfig) -> FixedPointResult:
    """Solve ``z = f(z)`` for every row of ``z0 [N, D]`` with ``config.method``; see the module doc."""
    if z0.dim() != 2:
        raise ValueError(f"z0 must be [N, D], got shape {tuple(z0.shape)}")
    book = RowBook(z0, config)
    get(config.method)(fn, book)
    return book.result()


__all__ = ["SOLVERS", "RowBook", "RowMap", "Solver", "get", "iterate", "register"]
