"""A model's convergence baseline (``check_model(baseline=...)``, ``newllm verify --baseline``).

Stored in the one baseline format (:mod:`newllm.matrix.baseline`, ``newllm-matrix/1``) as one
configuration named :data:`CONFIG`; the document's ``settings`` hold the token ids, solver settings,
seed and model config it was measured with. The comparison is the one gate's
(:func:`newllm.matrix.gate.check`): an exact one-sided binomial test on the converged count and a
stated slack on the mean iterations, the same rules as the benchmarks and property family 4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..matrix import baseline as B
from ..matrix import gate

#: The configuration name of a verify baseline.
CONFIG = "verify"
#: Solver settings that do not change the numbers (ignored when matching a baseline).
_IGNORED = ("record_trace",)


def entry(convergence: dict[str, Any]) -> dict[str, Any]:
    """The baseline entry of a ``convergence`` check's numbers."""
    out = {k: convergence[k] for k in ("tokens", "converged", "mean_iterations")}
    if convergence["tokens"] <= B.PER_TOKEN_UP_TO:
        out["iterations"] = list(convergence["iterations"])
    return {"settings": {}, **out}


def make_baseline(settings: dict[str, Any], convergence: dict[str, Any]) -> dict[str, Any]:
    """A baseline document from a report's ``settings`` and its ``convergence`` check's numbers."""
    keep: dict[str, Any] = {k: settings[k] for k in ("model", "token_ids", "solver", "seed") if k in settings}
    return B.document({CONFIG: entry(convergence)}, keep, about="newllm verify baseline (docs/verify.md)")


def load_baseline(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A validated baseline from a file path or an already loaded dict (ValueError naming the problem)."""
    if isinstance(source, dict):
        where = "baseline"
        B.validate(source, where)
        doc = source
    else:
        where = f"baseline file {str(source)!r}"
        try:
            doc = B.read(source)
        except B.FormatError as exc:
            raise ValueError(f"baseline: {exc}") from None
    if CONFIG not in doc["configurations"]:
        raise ValueError(
            f"{where} holds no {CONFIG!r} configuration (write it with newllm verify --write-baseline)"
        )
    st = doc["settings"]
    if not isinstance(st.get("token_ids"), list) or not isinstance(st.get("solver"), dict):
        raise ValueError(f"{where}: its settings must hold 'token_ids' (a list) and 'solver' (an object)")
    return doc


def match(baseline: dict[str, Any], token_ids: list[int], solver: dict[str, Any]) -> None:
    """ValueError unless ``baseline`` was measured on these token ids with these solver settings."""
    st = baseline["settings"]
    if st["token_ids"] != token_ids:
        raise ValueError(
            f"the baseline was measured on other token ids ({len(st['token_ids'])} ids "
            f"{st['token_ids'][:4]}...), not these ({len(token_ids)} ids {token_ids[:4]}...)"
        )
    theirs = {k: v for k, v in st["solver"].items() if k not in _IGNORED}
    ours = {k: v for k, v in solver.items() if k not in _IGNORED}
    diff = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
    if diff:
        pairs = ", ".join(f"{k} {theirs.get(k)!r} (baseline) vs {ours.get(k)!r}" for k in diff)
        raise ValueError(f"the baseline was measured with other solver settings: {pairs}")


def findings(baseline: dict[str, Any], convergence: dict[str, Any]) -> list[tuple[str, str]]:
    """The gate's ``(kind, line)`` findings (REGRESSION, IMPROVED, CHANGED, MISSING) for one model."""
    return gate.check(CONFIG, baseline["configurations"][CONFIG], entry(convergence))
