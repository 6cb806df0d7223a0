"""``parametrize_with_checks``: one pytest test per model and check (scikit-learn's pattern).

    from newllm.testing import parametrize_with_checks

    @parametrize_with_checks([MyModel(), ("small", lambda: MyModel(dim=8))])
    def test_newllm_checks(model, check):
        check(model)

Test ids are ``<label>-<check>``: the label is the class name of a model, the ``__name__`` of a
factory, or the first item of a ``(label, model_or_factory)`` pair (repeated labels get ``-2``,
``-3``, ...). A factory (a zero-argument callable that is not an ``nn.Module``) is called once, on
the first check of its model; the model's checks share one :class:`~newllm.testing.Probe`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import nn

from . import gate
from .check import check_names, run_check
from .probe import Probe
from .report import CheckResult

ModelSource = nn.Module | Callable[[], nn.Module]


class _Holder:
    """One model entry: builds the model (factory) and its probe on first use, shared by its checks."""

    def __init__(self, label: str, source: ModelSource, kwargs: dict[str, Any]):
        self.label, self.source, self.kwargs = label, source, kwargs
        self._probe: Probe | None = None

    def probe(self) -> Probe:
        if self._probe is None:
            model = self.source if isinstance(self.source, nn.Module) else self.source()
            kw = dict(self.kwargs)
            baseline = kw.pop("baseline")
            probe = Probe.of(model, **kw)
            if baseline is not None:
                probe.baseline = gate.load_baseline(baseline)
                gate.match(probe.baseline, probe.token_ids.tolist(), probe.solver.to_dict())
            self._probe = probe
        return self._probe


class ModelCheck:
    """``check(model)``: run one named check on the parametrized model. A failed check raises
    AssertionError with the check's detail; a skipped one calls ``pytest.skip`` with it."""

    def __init__(self, name: str, holder: _Holder):
        self.name, self._holder = name, holder

    def __repr__(self) -> str:
        return f"ModelCheck({self.name!r}, {self._holder.label!r})"

    def __call__(self, model: ModelSource | None = None) -> CheckResult:
        if model is not None and model is not self._holder.source:
            raise ValueError(f"{self!r} was parametrized with another model: call check(model) with its own")
        result = run_check(self.name, self._holder.probe())
        if result.status == "failed":
            raise AssertionError(f"{self.name} failed for {self._holder.label}: {result.detail}")
        if result.status == "skipped":
            import pytest

            pytest.skip(f"{self.name}: {result.detail}")
        return result


def _entries(models: Iterable[Any] | dict[str, ModelSource]) -> list[tuple[str, ModelSource]]:
    items = list(models.items()) if isinstance(models, dict) else list(models)
    out: list[tuple[str, ModelSource]] = []
    seen: dict[str, int] = {}
    for item in items:
        given, source = item if isinstance(item, tuple) and len(item) == 2 else (None, item)
        if not (isinstance(source, nn.Module) or callable(source)):
            raise ValueError(
                f"models must be nn.Modules or zero-argument factories, got {type(source).__name__}"
            )
        default = (
            type(source).__name__ if isinstance(source, nn.Module) else getattr(source, "__name__", "model")
        )
        label = str(given or default)
        seen[label] = seen.get(label, 0) + 1
        out.append((label if seen[label] == 1 else f"{label}-{seen[label]}", source))
    if not out:
        raise ValueError("parametrize_with_checks needs at least one model")
    return out


def parametrize_with_checks(
    models: Iterable[Any] | dict[str, ModelSource],
    *,
    checks: Sequence[str] | None = None,
    token_ids: Sequence[int] | None = None,
    solver: Any = None,
    seed: int = 0,
    contractive: bool = False,
    baseline: Any = None,
):
    """A ``pytest.mark.parametrize("model, check", ...)`` decorator: one test per model and check
    (module doc). The keyword arguments are :func:`~newllm.testing.check_model`'s, for every model."""
    import pytest

    names = check_names(checks)
    kwargs = dict(token_ids=token_ids, solver=solver, seed=seed, contractive=contractive, baseline=baseline)
    params = []
    for label, source in _entries(models):
        holder = _Holder(label, source, kwargs)
        params += [pytest.param(source, ModelCheck(n, holder), id=f"{label}-{n}") for n in names]
    return pytest.mark.parametrize("model, check", params)
