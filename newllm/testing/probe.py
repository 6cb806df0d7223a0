"""What every check runs on: the model, the probe tokens, the stated solver config, a seed and the
caller's claims; measurements several checks share are computed once and kept here."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from .. import protocol
from ..config import SolverConfig
from ..contraction import EXACT_MAX_DIM, arnoldi, eval_mode, exact, model_map, sigma_max
from ..contraction.estimate import Estimate
from ..result import FixedPointResult
from ..solve import solve
from ..tokens import spread_token_ids

#: A model under test: anything, checked at run time by :func:`newllm.protocol.require` (an
#: ``nn.Module`` with ``embed``, ``step``, ``initial_context``); ``Any`` because nn.Module's
#: ``__getattr__`` typing cannot express the protocol statically.
Model = Any

#: Probe tokens when none are given: this many ids spread over the vocabulary (``spread_token_ids``).
DEFAULT_TOKENS = 16
#: The float64 reference fixed points: Anderson to a ``rel`` residual below REF_THRESHOLD within
#: REF_ITERATIONS; a token whose lowest residual has not improved by 1% in REF_STALL iterations stops
#: as stalled (no fixed point found; on the untrained built-in models this saves most of the budget).
REF_THRESHOLD = 1e-10
REF_ITERATIONS = 500
REF_STALL = 100


def probe_token_ids(model: Model, token_ids: torch.Tensor | Sequence[int] | None) -> torch.Tensor:
    """Flat int64 ids ``[N]``: the given ones (validated), or :data:`DEFAULT_TOKENS` spread over
    ``model.vocab_size``. (``batch_invariance`` and ``collapse`` skip with fewer than 2 distinct ids.)"""
    if token_ids is None:
        v = protocol.vocab_size(model)
        if v is None:
            raise ValueError(
                f"{type(model).__name__} has no vocab_size attribute: pass token_ids (>= 2 distinct ids)"
            )
        return torch.tensor(spread_token_ids(min(DEFAULT_TOKENS, v - 1), v), dtype=torch.long)
    return protocol.token_tensor(model, token_ids).reshape(-1)


def smoke(model: Model, ids: torch.Tensor) -> None:
    """Call each protocol method once; ValueError when one has the wrong signature or returns no tensor.
    Other errors are left to the checks (they report them as failures)."""
    calls = (
        ("initial_context((2,))", lambda: model.initial_context((2,))),
        ("embed(token_ids[:2])", lambda: model.embed(ids[:2])),
        (
            "step(embed(token_ids[:2]), initial_context((2,)))",
            lambda: model.step(model.embed(ids[:2]), model.initial_context((2,))),
        ),
    )
    with eval_mode(model), torch.no_grad():
        for text, call in calls:
            try:
                out = call()
            except TypeError as exc:
                raise ValueError(
                    f"{type(model).__name__}.{text} raised TypeError ({exc}): "
                    "see the protocol in docs/verify.md"
                ) from None
            except Exception:  # noqa: BLE001 - reported by the checks, not here
                return
            if not isinstance(out, torch.Tensor):
                raise ValueError(
                    f"{type(model).__name__}.{text} returned {type(out).__name__}, expected a Tensor"
                )


def apply(model: Model, ids: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
    """One eval-mode step ``step(embed(ids), contexts)`` with ``contexts [N, C]`` moved to the model's
    device and dtype (those of its ``initial_context``)."""
    with eval_mode(model), torch.no_grad():
        like = model.initial_context(())
        return model.step(model.embed(ids), contexts.to(device=like.device, dtype=like.dtype))


def labels(ids: torch.Tensor, positions: torch.Tensor | Sequence[int], limit: int = 3) -> str:
    """``token 300 (position 2), ...`` for the first ``limit`` positions, then ``and k more``."""
    pos = [int(p) for p in positions]
    text = ", ".join(f"token {int(ids[p])} (position {p})" for p in pos[:limit])
    return text + (f" and {len(pos) - limit} more" if len(pos) > limit else "")


def anderson(metric: str, threshold: float, max_iterations: int, stall_window: int) -> SolverConfig:
    """The checks' reference solver settings: Anderson, eval mode, from the initial context."""
    return SolverConfig(
        metric=metric,
        threshold=threshold,
        max_iterations=max_iterations,
        method="anderson",
        stall_window=stall_window,
    )


@dataclass(eq=False)
class Probe:
    """Build with :meth:`of`. ``token_ids [N]`` int64 on the CPU; ``solver`` the stated config."""

    model: Model
    token_ids: torch.Tensor
    solver: SolverConfig
    seed: int = 0
    contractive: bool = False
    baseline: dict[str, Any] | None = None

    @classmethod
    def of(
        cls,
        model: Model,
        *,
        token_ids: torch.Tensor | Sequence[int] | None = None,
        solver: SolverConfig | None = None,
        seed: int = 0,
        contractive: bool = False,
        baseline: dict[str, Any] | None = None,
    ) -> Probe:
        """Validate everything (ValueError naming the bad value) and call each protocol method once."""
        protocol.require(model)
        ids = probe_token_ids(model, token_ids)
        solver = SolverConfig() if solver is None else solver
        if not isinstance(solver, SolverConfig):
            raise ValueError(f"solver must be a SolverConfig, got {type(solver).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not isinstance(contractive, bool):
            raise ValueError(f"contractive must be True or False, got {contractive!r}")
        smoke(model, ids)
        return cls(model, ids, solver, seed, contractive, baseline)

    @property
    def n(self) -> int:
        return int(self.token_ids.numel())

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded with ``seed + offset`` (each use its own offset)."""
        return torch.Generator().manual_seed(self.seed + offset)

    def with_solver(self, **changes: Any) -> SolverConfig:
        return dataclasses.replace(self.solver, **changes)

    def start_points(self) -> dict[str, torch.Tensor]:
        """Contexts ``[N, C]`` (float64, CPU) at which step-level checks compare: the initial context
        and standard-normal contexts (``seed``)."""
        with torch.no_grad():
            c0 = self.model.initial_context((self.n,)).detach().to("cpu", torch.float64)
        noise = torch.randn(c0.shape, generator=self.generator(1), dtype=torch.float64)
        return {"the initial context": c0, "random contexts": noise}

    @cached_property
    def solved(self) -> FixedPointResult:
        """The stated solve (eval mode, reset from the initial context) with the residual trace."""
        return solve(self.model, self.token_ids, self.with_solver(record_trace=True))

    @cached_property
    def model64(self) -> Model:
        """A float64 copy of the model (the user's model is never changed)."""
        return copy.deepcopy(self.model).to(torch.float64)

    @cached_property
    def reference(self) -> FixedPointResult:
        """Float64 fixed points: Anderson from the initial context (settings: module constants)."""
        return solve(self.model64, self.token_ids, anderson("rel", REF_THRESHOLD, REF_ITERATIONS, REF_STALL))

    @cached_property
    def spectrum(self) -> dict[str, Estimate]:
        """σ_max and ρ of each token's Jacobian at its reference fixed point: exact (full Jacobian)
        up to ``EXACT_MAX_DIM``, else a Lanczos lower bound and an Arnoldi estimate."""
        z = self.reference.context
        fn = model_map(self.model64, self.token_ids)
        with eval_mode(self.model64):
            if z.shape[-1] <= EXACT_MAX_DIM:
                return exact(fn, z)
            return {
                "sigma_max": sigma_max(fn, z, iterations=100, generator=self.generator(2)),
                "spectral_radius": arnoldi(fn, z, krylov_dim=60, generator=self.generator(3)),
            }

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings of the run (the report's header)."""
        with torch.no_grad():
            like = self.model.initial_context(())
        return {
            "model": {
                "class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
                "context_dim": int(like.shape[-1]),
                "dtype": str(like.dtype).removeprefix("torch."),
                "device": str(like.device),
                "parameters": sum(p.numel() for p in self.model.parameters()),
            },
            "token_ids": self.token_ids.tolist(),
            "solver": self.solver.to_dict(),
            "seed": self.seed,
            "contractive": self.contractive,
        }
