"""``Phase1Config``: the seeds' Phase 1 training settings (004, 001, 002), strictly validated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .. import _fields as F
from ..config import DROPOUT_MODES, DictIO

LOOPS = ("spec", "batched")
#: The recipe terms added for issue 18, with their defaults (all off).
RECIPE_TERMS: dict[str, Any] = {
    "sigma_weight": 0.0,
    "sigma_margin": 0.9,
    "sigma_iterations": 3,
    "spectral_scale": None,
    "variance_weight": 0.0,
    "covariance_weight": 0.0,
}
#: Fields :meth:`Phase1Config.to_dict` leaves out at these values.
OMITTED_AT_DEFAULT: dict[str, Any] = {**RECIPE_TERMS, "dropout_mode": "fresh"}


@dataclass(frozen=True)
class Phase1Config(DictIO):
    """Fixed-point training. Defaults are the seeds' reported settings (001/002).

    A token is converged, and its inner loop stops, at the first iteration ``k > warmup`` whose
    training loss (``metrics.mse(new, c)``, per token) is below ``threshold`` (the stop rule,
    :mod:`newllm.stop`).
    """

    #: Deprecated keys still read (one release): old name -> new name (docs/glossary.md).
    RENAMED: ClassVar[dict[str, str]] = {"tolerance": "threshold"}

    epochs: int = 3
    learning_rate: float = 1e-4
    max_iterations: int = 50
    #: In the ``mse`` metric: the training loss itself.
    threshold: float = 0.01
    warmup: int = 0
    #: Max gradient norm (``clip_grad_norm_``); None disables clipping.
    grad_clip: float | None = 1.0
    #: ``spec``: the seeds' per-token loop. ``batched``: all tokens of a batch of samples together.
    loop: str = "spec"
    #: Samples per optimizer batch in the batched loop.
    batch_samples: int = 1
    seed: int = 0
    #: Weight of a Hutchinson estimate of ||J||_F^2 / D added to the loss (Bai et al., 2021); 0 = off.
    jacobian_weight: float = 0.0
    #: Weight of the σ_max hinge ``relu(σ̂ - sigma_margin)^2`` (penalties.sigma_hinge); 0 = off.
    sigma_weight: float = 0.0
    sigma_margin: float = 0.9
    #: Power-iteration steps of the hinge's σ̂ per optimizer step.
    sigma_iterations: int = 3
    #: Cap the spectral norm of the weights acting on ``c`` at this after every step (None = off).
    spectral_scale: float | None = None
    #: Weights of the anti-collapse terms over a group's new contexts (VICReg variance / covariance).
    variance_weight: float = 0.0
    covariance_weight: float = 0.0
    #: Success criterion of seed 004: convergence rate >= this.
    success_rate: float = 0.95
    #: Dropout masks of the inner iterations: ``fresh`` at every iteration (the seeds') or one ``fixed``
    #: mask per token for all of its iterations (drawn from the run's generator when the token starts).
    dropout_mode: str = "fresh"

    def __post_init__(self) -> None:
        F.check_int("epochs", self.epochs, 1, 1_000_000)
        F.check_float("learning_rate", self.learning_rate, 0.0, 10.0, lo_open=True)
        F.check_int("max_iterations", self.max_iterations, 1, 1_000_000)
        F.check_float("threshold", self.threshold, 0.0, None, lo_open=True)
        F.check_int("warmup", self.warmup, 0, None)
        if self.warmup >= self.max_iterations:
            raise ValueError(
                f"warmup must be below max_iterations ({self.max_iterations}), got {self.warmup}: "
                "no iteration would be checked for convergence"
            )
        if self.grad_clip is not None:
            F.check_float("grad_clip", self.grad_clip, 0.0, None, lo_open=True)
        F.check_choice("loop", self.loop, LOOPS)
        F.check_int("batch_samples", self.batch_samples, 1, 1_000_000)
        F.check_int("seed", self.seed, 0, 2**63 - 1)
        F.check_float("jacobian_weight", self.jacobian_weight, 0.0, None)
        F.check_float("sigma_weight", self.sigma_weight, 0.0, None)
        F.check_float("sigma_margin", self.sigma_margin, 0.0, None)
        F.check_int("sigma_iterations", self.sigma_iterations, 0, 1000)
        if self.spectral_scale is not None:
            F.check_float("spectral_scale", self.spectral_scale, 0.0, None, lo_open=True)
        F.check_float("variance_weight", self.variance_weight, 0.0, None)
        F.check_float("covariance_weight", self.covariance_weight, 0.0, None)
        F.check_float("success_rate", self.success_rate, 0.0, 1.0)
        F.check_choice("dropout_mode", self.dropout_mode, DROPOUT_MODES)

    def to_dict(self) -> dict[str, Any]:
        """All fields, except those left at a default that changes nothing (:data:`OMITTED_AT_DEFAULT`:
        the recipe terms, off; ``dropout_mode`` ``fresh``), so documents and cache keys made before those
        fields existed still match."""
        d = F.to_dict(self)
        for key, default in OMITTED_AT_DEFAULT.items():
            if d.get(key) == default:
                del d[key]
        return d
