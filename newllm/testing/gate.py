"""The convergence baseline (``check_model(baseline=...)``, ``newllm verify --baseline``) and the gate.

A baseline is one JSON object (format :data:`FORMAT`): the token ids, solver settings and seed it was
measured with, and the ``convergence`` numbers (``tokens``, ``converged``, ``rate``,
``mean_iterations``). The gate: the rate regressed when a one-sided exact binomial test rejects
"the true rate is the baseline's" at :data:`ALPHA` (:func:`rate_regressed`); the mean iterations
regressed when above the baseline's by more than :data:`ITERATION_MARGIN` (relative) plus
:data:`ITERATION_SLACK` (:func:`iterations_regressed`). Same test and margins as the convergence
regression family (properties/).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from ..stats import binomial_cdf

FORMAT = "newllm-verify-baseline/1"
ALPHA = 0.01
ITERATION_MARGIN = 0.10
ITERATION_SLACK = 1.0
#: Solver settings that do not change the numbers (ignored when matching a baseline).
_IGNORED = ("record_trace",)


def rate_regressed(
    converged: int, tokens: int, base_rate: float, *, alpha: float = ALPHA
) -> tuple[bool, float]:
    """``(regressed, p)``: ``p = P(X <= converged)`` for ``X ~ Binomial(tokens, base_rate)`` (the exact
    one-sided p-value of a drop; scipy's ``binomtest(..., alternative="less")``), ``regressed = p < alpha``."""
    p = binomial_cdf(converged, tokens, base_rate)
    return p < alpha, p


def iterations_regressed(now: float, base: float) -> bool:
    """Mean iterations ``now`` above ``base * (1 + ITERATION_MARGIN) + ITERATION_SLACK``."""
    return now > base * (1.0 + ITERATION_MARGIN) + ITERATION_SLACK


def make_baseline(settings: dict[str, Any], convergence: dict[str, Any]) -> dict[str, Any]:
    """A baseline from a report's ``settings`` and its ``convergence`` check's numbers."""
    from .. import __version__

    keep = ("tokens", "converged", "rate", "mean_iterations", "mean_iterations_converged")
    return {
        "format": FORMAT,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "newllm_version": __version__,
        "model": settings["model"],
        "token_ids": settings["token_ids"],
        "solver": settings["solver"],
        "seed": settings["seed"],
        "convergence": {k: convergence[k] for k in keep},
    }


def load_baseline(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A validated baseline from a file path or an already loaded dict (ValueError naming the problem)."""
    where = "baseline"
    if not isinstance(source, dict):
        where = f"baseline file {str(source)!r}"
        try:
            source = json.loads(Path(source).read_text())
        except OSError as exc:
            raise ValueError(f"cannot read {where}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(source, dict) or source.get("format") != FORMAT:
        got = source.get("format") if isinstance(source, dict) else type(source).__name__
        raise ValueError(f"{where} must be a JSON object with format {FORMAT!r}, got {got!r}")
    conv = source.get("convergence")
    if not (isinstance(conv, dict) and _valid_counts(conv)):
        raise ValueError(
            f"{where}: 'convergence' must hold integers tokens >= 1, 0 <= converged <= tokens "
            f"and a number mean_iterations; got {conv!r}"
        )
    if not isinstance(source.get("token_ids"), list) or not isinstance(source.get("solver"), dict):
        raise ValueError(f"{where} must hold 'token_ids' (a list) and 'solver' (an object)")
    return source


def _valid_counts(conv: dict[str, Any]) -> bool:
    t, c, m = conv.get("tokens"), conv.get("converged"), conv.get("mean_iterations")
    ints = isinstance(t, int) and isinstance(c, int) and not isinstance(t, bool) and not isinstance(c, bool)
    return ints and isinstance(m, int | float) and 1 <= t and 0 <= c <= t  # type: ignore[operator]


def match(baseline: dict[str, Any], token_ids: list[int], solver: dict[str, Any]) -> None:
    """ValueError unless ``baseline`` was measured on these token ids with these solver settings."""
    if baseline["token_ids"] != token_ids:
        raise ValueError(
            f"the baseline was measured on other token ids ({len(baseline['token_ids'])} ids "
            f"{baseline['token_ids'][:4]}...), not these ({len(token_ids)} ids {token_ids[:4]}...)"
        )
    theirs = {k: v for k, v in baseline["solver"].items() if k not in _IGNORED}
    ours = {k: v for k, v in solver.items() if k not in _IGNORED}
    diff = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
    if diff:
        pairs = ", ".join(f"{k} {theirs.get(k)!r} (baseline) vs {ours.get(k)!r}" for k in diff)
        raise ValueError(f"the baseline was measured with other solver settings: {pairs}")
