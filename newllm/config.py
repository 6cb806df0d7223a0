"""Frozen, strictly validated configs for the model and the fixed-point solver.

Both load from dicts/JSON with :meth:`from_dict` / :meth:`from_json`; unknown keys, wrong types
and out-of-range values raise ``ValueError`` naming the field and the valid range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from . import _fields as F
from .metrics import METRICS
from .solvers import SOLVERS

#: Values of the ``arch`` shorthand (the named architectures of experiments: newllm.matrix.ARCHITECTURES).
ARCH_VALUES = ("sequential", "layerwise")
CONTEXT_MODES = ("reset", "carry")
#: ``fresh``: new dropout masks at every evaluation (the seeds). ``fixed``: one mask per token per solve.
DROPOUT_MODES = ("fresh", "fixed")

#: GPT-2's 50,257 ids plus the two chat markers <|im_start|>, <|im_end|> (as in the seeds).
DEFAULT_VOCAB_SIZE = 50_259


class DictIO:
    """Reading and writing a config dataclass as a dict or JSON file, validated by :mod:`newllm._fields`."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return F.from_dict(cls, data)

    @classmethod
    def from_json(cls, path: str | Path) -> Self:
        return F.from_json(cls, path)

    def to_dict(self) -> dict[str, Any]:
        return F.to_dict(self)


@dataclass(frozen=True)
class ModelConfig(DictIO):
    """Shape of a CVFP model.

    ``structure`` generalises both architectures: each entry is one block of that many
    Linear+ReLU+Dropout layers followed by one gated context update. Sequential with L layers is
    ``(L,)``, Layer-wise is ``(1,) * L``, mixed e.g. ``(2, 2)``. Give either ``arch`` (+ ``num_layers``,
    default 2) or ``structure``; when both are given they must agree.
    """

    arch: str | None = None
    structure: tuple[int, ...] | None = None
    num_layers: int | None = None
    vocab_size: int = DEFAULT_VOCAB_SIZE
    embed_dim: int = 256
    context_dim: int = 256
    hidden_dim: int = 256
    dropout: float = 0.1
    init_std: float = 0.02
    #: Optional ``clamp(-x, x)`` after each context LayerNorm (seed 000 removed it; kept to test that claim).
    context_clamp: float | None = None

    def __post_init__(self) -> None:
        if self.arch is not None:
            F.check_choice("arch", self.arch, ARCH_VALUES)
        if self.num_layers is not None:
            F.check_int("num_layers", self.num_layers, 1, 64)
        if self.structure is not None:
            s = self.structure
            if isinstance(s, str) or not isinstance(s, tuple | list) or len(s) == 0:
                raise ValueError(f"structure must be a non-empty list of positive layer counts, got {s!r}")
            for i, n in enumerate(s):
                F.check_int(f"structure[{i}]", n, 1, 64)
            object.__setattr__(self, "structure", tuple(s))
            total = sum(self.structure)
            if total > 64:
                raise ValueError(f"structure {self.structure} has {total} layers in total: at most 64")
            if self.num_layers is not None and self.num_layers != total:
                raise ValueError(
                    f"num_layers={self.num_layers} disagrees with structure {self.structure} (sum {total})"
                )
            if self.arch is not None and _arch_of(self.structure) not in (self.arch, "both"):
                raise ValueError(
                    f"arch={self.arch!r} disagrees with structure {self.structure}: sequential is (L,), "
                    f"layerwise is (1,)*L; omit arch for a mixed structure"
                )
        F.check_int("vocab_size", self.vocab_size, 2, 10_000_000)
        F.check_int("embed_dim", self.embed_dim, 1, 65_536)
        F.check_int("context_dim", self.context_dim, 1, 65_536)
        F.check_int("hidden_dim", self.hidden_dim, 1, 65_536)
        F.check_float("dropout", self.dropout, 0.0, 1.0, hi_open=True)
        F.check_float("init_std", self.init_std, 0.0, 10.0, lo_open=True)
        if self.context_clamp is not None:
            F.check_float("context_clamp", self.context_clamp, 0.0, None, lo_open=True)

    @property
    def blocks(self) -> tuple[int, ...]:
        """The resolved structure: layers per block."""
        if self.structure is not None:
            return self.structure
        n = 2 if self.num_layers is None else self.num_layers
        return (n,) if self.arch == "sequential" else (1,) * n

    @property
    def arch_name(self) -> str:
        """``sequential``, ``layerwise`` or ``mixed`` (a single 1-layer block counts as layerwise)."""
        if self.arch is not None:
            return self.arch
        a = _arch_of(self.blocks)
        return "layerwise" if a == "both" else a

    @property
    def total_layers(self) -> int:
        return sum(self.blocks)


def _arch_of(structure: tuple[int, ...]) -> str:
    if len(structure) == 1 and structure[0] == 1:
        return "both"
    if len(structure) == 1:
        return "sequential"
    if all(n == 1 for n in structure):
        return "layerwise"
    return "mixed"


@dataclass(frozen=True)
class SolverConfig(DictIO):
    """Settings of :func:`newllm.solve`.

    A token is converged at the first iteration ``k > warmup`` whose residual (in ``metric``,
    between ``f(c)`` and ``c``) is below ``threshold`` (and stays below for ``confirm`` more
    iterations); it keeps that iteration count. The decision is :func:`newllm.stop.stop`'s.
    """

    #: Deprecated keys still read (one release): old name -> new name (docs/glossary.md).
    RENAMED: ClassVar[dict[str, str]] = {"dropout": "train_mode"}

    max_iterations: int = 200
    warmup: int = 0
    threshold: float = 0.01
    metric: str = "mse"
    #: ``reset``: every token starts from zeros (the seeds). ``carry``: token t starts from t-1's fixed point.
    context_mode: str = "reset"
    #: Iterate in train mode (dropout on, masks from the generator). The seeds' untrained tests: False.
    train_mode: bool = False
    #: With ``train_mode``: ``fresh`` masks at every iteration (the seeds') or one ``fixed`` mask per
    #: token for the whole solve (drawn from the generator once; the map being solved is then deterministic).
    dropout_mode: str = "fresh"
    method: str = "picard"
    #: Picard damping beta: ``c <- c + beta (f(c) - c)``; 1.0 is plain iteration.
    damping: float = 1.0
    #: Anderson history size (``method="anderson"``).
    anderson_m: int = 5
    #: Anderson Tikhonov regularisation, relative to the scale of the residual Gram matrix.
    anderson_reg: float = 1e-8
    #: Rank-one updates Broyden keeps per row before restarting (``method="broyden"``/``"hybrid"``);
    #: None: all of them (memory ``2 N D max_iterations`` float64 values).
    broyden_memory: int | None = None
    #: ``method="hybrid"``: a row switches from Anderson to Broyden when its lowest residual has not
    #: improved by 1% for this many iterations.
    hybrid_window: int = 80
    #: End a token as diverged when its l2 residual exceeds this factor times its lowest one (None: off).
    divergence_factor: float | None = 1e6
    #: End a token as stalled when its lowest residual has not improved by 1% in this many iterations (None: off).
    stall_window: int | None = None
    #: Keep per-iteration residuals (every metric) in ``FixedPointResult.trace``.
    record_trace: bool = False
    #: Extra consecutive iterations that must stay below the threshold (0: the notes' rule; 1: stable).
    confirm: int = 0

    def __post_init__(self) -> None:
        F.check_int("max_iterations", self.max_iterations, 1, 10_000_000)
        F.check_int("warmup", self.warmup, 0, None)
        if self.warmup >= self.max_iterations:
            raise ValueError(
                f"warmup must be below max_iterations ({self.max_iterations}), got {self.warmup}: "
                "no iteration would be checked for convergence"
            )
        F.check_float("threshold", self.threshold, 0.0, None, lo_open=True)
        F.check_choice("metric", self.metric, tuple(METRICS))
        F.check_choice("context_mode", self.context_mode, CONTEXT_MODES)
        F.check_bool("train_mode", self.train_mode)
        F.check_choice("dropout_mode", self.dropout_mode, DROPOUT_MODES)
        F.check_choice("method", self.method, tuple(SOLVERS))
        F.check_float("damping", self.damping, 0.0, 1.0, lo_open=True)
        F.check_int("anderson_m", self.anderson_m, 1, 100)
        F.check_float("anderson_reg", self.anderson_reg, 0.0, 1.0)
        if self.broyden_memory is not None:
            F.check_int("broyden_memory", self.broyden_memory, 1, 10_000_000)
        F.check_int("hybrid_window", self.hybrid_window, 1, 10_000_000)
        if self.divergence_factor is not None:
            F.check_float("divergence_factor", self.divergence_factor, 1.0, None, lo_open=True)
        if self.stall_window is not None:
            F.check_int("stall_window", self.stall_window, 2, None)
        F.check_bool("record_trace", self.record_trace)
        F.check_int("confirm", self.confirm, 0, 1000)
        if self.warmup + self.confirm >= self.max_iterations:
            raise ValueError(
                f"warmup + confirm must be below max_iterations ({self.max_iterations}), got "
                f"{self.warmup} + {self.confirm}: no token could converge"
            )
