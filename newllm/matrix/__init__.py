"""The experiment matrix: the one place that defines what the project's experiments run.

Axes (:mod:`~newllm.matrix.axes`): architectures (:data:`ARCHITECTURES`: sequential, layerwise,
mixed (2, 2)), model recipes (:data:`RECIPES`: untrained, the seeds' Phase 1 ``001``/``seeds`` and
``004``, ``jacobian`` and the contraction/anti-collapse recipes of docs/recipes.md), token sets (:data:`TOKEN_SETS`: spread, first, random, distinct), decision rules
(:func:`rules`) and seeds (:func:`seeds`). A :class:`ModelSpec` picks one value of each for a model;
:func:`build` returns it, trained at most once per code version through the shared cache
(:mod:`~newllm.matrix.cache`). Measured configurations are written in the one result/baseline format
(:mod:`~newllm.matrix.baseline`) and compared by the one gate (:mod:`newllm.tools.gate`).
Consumers: ``newllm reproduce`` (:mod:`newllm.reproduce.plan`), the convergence properties
(``properties/convergence.py``) and the benchmarks (``bench/cases.py``), the last two through the
shared regression models of :mod:`~newllm.matrix.regression`.
"""

from .axes import (
    ARCHITECTURES,
    BENCHMARK_RECIPES,
    CONTROL_RULES,
    NOTES_ARCHITECTURES,
    NOTES_RULES,
    RECIPES,
    RULE_ITERATIONS,
    STABLE_RULES,
    TOKEN_SETS,
    VARIANTS,
    Recipe,
    Rule,
    model_config,
    rules,
    seeds,
    token_ids,
)
from .models import Built, ModelSpec, build, initial_model

__all__ = [
    "ARCHITECTURES",
    "BENCHMARK_RECIPES",
    "Built",
    "CONTROL_RULES",
    "ModelSpec",
    "NOTES_ARCHITECTURES",
    "NOTES_RULES",
    "RECIPES",
    "RULE_ITERATIONS",
    "Recipe",
    "STABLE_RULES",
    "Rule",
    "TOKEN_SETS",
    "VARIANTS",
    "build",
    "initial_model",
    "model_config",
    "rules",
    "seeds",
    "token_ids",
]
