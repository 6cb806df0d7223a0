"""Contraction toolkit: how strongly ``c -> f(c, token)`` contracts, each number labelled for what it is.

=============================  ================  =============================================
function                       kind              what
=============================  ================  =============================================
:func:`pair_ratio`             ``lower_bound``   max ``‖f(a)−f(b)‖/‖a−b‖`` over sampled pairs
                                                 (+ gradient ascent): global Lipschitz constant
:func:`sigma_max`              ``lower_bound``   power iteration on ``JᵀJ`` (JVP/VJP): local σ_max
:func:`spectral_radius`        exact/estimate    ρ(J): full-Jacobian eigvals or Arnoldi
:func:`exact`                  ``exact``         σ_max and ρ from the full Jacobian (jacrev-style)
:func:`observed_factor`          ``estimate``      geometric factor fitted to a solver's residual trace
=============================  ================  =============================================

All norms are Euclidean (l2) over the context dimension. Estimators take a :data:`PointMap`
(``fn(z [N, *P, D]) -> [N, *P, D]``, one map per row: :func:`model_map` wraps ``model.step``;
:func:`linear_map` gives known answers) and points ``z [N, D]``; every random choice takes a
``generator`` or ``seed``. :func:`contraction_report` runs them all at the fixed points of a model.
"""

from .estimate import KINDS, Estimate
from .factor import fit_log_line, observed_factor, predict_iterations
from .jacobian import exact, jacobian, spectrum
from .maps import PointMap, eval_mode, linear_map, model_map
from .pairs import DEFAULT_RADII, pair_ratio
from .report import contraction_report, estimates_table
from .spectral import EXACT_MAX_DIM, Products, arnoldi, sigma_max, spectral_radius

__all__ = [
    "DEFAULT_RADII",
    "EXACT_MAX_DIM",
    "Estimate",
    "KINDS",
    "PointMap",
    "Products",
    "arnoldi",
    "contraction_report",
    "estimates_table",
    "eval_mode",
    "exact",
    "fit_log_line",
    "jacobian",
    "linear_map",
    "model_map",
    "observed_factor",
    "pair_ratio",
    "predict_iterations",
    "sigma_max",
    "spectral_radius",
    "spectrum",
]
