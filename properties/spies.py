"""Recording wrappers around ``newllm.metrics`` and ``model.step``, installed with monkeypatch.

They observe the call path at run time: which registry metric a decision used, what residual reached
``metrics.below``, what went into and came out of each application of the update.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from newllm import build_model, metrics
from newllm.phase1 import Phase1Config, train_phase1


@dataclass
class MetricCall:
    name: str
    out: torch.Tensor
    new: torch.Tensor
    old: torch.Tensor
    #: The watched model's weights at the time of the call (empty unless ``MetricSpy.watch`` is set).
    params: dict[str, torch.Tensor]


@dataclass
class Decision:
    residual: torch.Tensor
    threshold: float
    verdict: torch.Tensor
    #: Names of the registry calls since the previous decision whose output equals this residual
    #: bitwise (after a dtype/device move); empty when it came from elsewhere.
    sources: frozenset[str]


@dataclass
class MetricSpy:
    """Wraps every ``METRICS`` entry, the module attributes of the same names and ``metrics.below``."""

    #: A model whose weights are snapshotted at every metric call (e.g. Phase 1's, which changes).
    watch: torch.nn.Module | None = None
    calls: list[MetricCall] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    _pending: list[MetricCall] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> MetricSpy:
        """Use a ``pytest.MonkeyPatch.context()`` inside a Hypothesis test (not the function fixture)."""
        for name, fn in list(metrics.METRICS.items()):
            wrapped = self._wrap(name, fn)
            monkeypatch.setitem(metrics.METRICS, name, wrapped)
            monkeypatch.setattr(metrics, name, wrapped)
        real_below = metrics.below

        def below(res: torch.Tensor, threshold: float) -> torch.Tensor:
            verdict = real_below(res, threshold)
            self.decisions.append(
                Decision(res.detach().clone(), float(threshold), verdict.clone(), self._sources(res))
            )
            self._pending = []
            return verdict

        monkeypatch.setattr(metrics, "below", below)
        return self

    def _wrap(self, name, fn):
        def spy(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
            out = fn(new, old)
            snap = {}
            if self.watch is not None:
                snap = {k: v.detach().clone() for k, v in self.watch.state_dict().items()}
            call = MetricCall(name, out.detach().clone(), new.detach().clone(), old.detach().clone(), snap)
            self.calls.append(call)
            self._pending.append(call)
            return out

        return spy

    def _sources(self, res: torch.Tensor) -> frozenset[str]:
        r = res.detach()
        latest = {c.name: c.out for c in self._pending}  # the last call of each metric
        return frozenset(
            name
            for name, out in latest.items()
            if out.shape == r.shape and torch.equal(out.to(device=r.device, dtype=r.dtype), r)
        )

    @property
    def true_verdicts(self) -> int:
        return int(sum(int(d.verdict.sum()) for d in self.decisions))


def spied_phase1(case, samples: list[list[int]], *, watch: bool = False, **settings):
    """Phase 1 on ``samples`` for a model built from ``case`` (seed ``case.seed``) under a :class:`MetricSpy`
    (snapshotting the model's weights when ``watch``) -> ``(spy, run, config)``. ``settings``: Phase1Config
    fields; ``max_iterations`` is ``warmup + 4`` and ``seed`` is ``case.seed``."""
    model = build_model(case.config, seed=case.seed)
    cfg = Phase1Config(**settings, max_iterations=settings["warmup"] + 4, seed=case.seed)
    with pytest.MonkeyPatch.context() as mp:
        spy = MetricSpy(watch=model if watch else None).install(mp)
        run = train_phase1(model, samples, cfg, progress=False)
    return spy, run, cfg


@dataclass
class StepCall:
    token_emb: torch.Tensor
    context: torch.Tensor
    out: torch.Tensor
    generator_state: torch.Tensor | None
    params: dict[str, torch.Tensor]
    training: bool


@dataclass
class StepSpy:
    """Wraps ``model.step`` (an instance attribute shadowing the method) and records every call."""

    calls: list[StepCall] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch, model: torch.nn.Module, *, params: bool = False):
        real = model.step

        def step(token_emb, context, *, generator=None):
            state = generator.get_state() if generator is not None else None
            snap = {k: v.detach().clone() for k, v in model.state_dict().items()} if params else {}
            out = real(token_emb, context, generator=generator)
            self.calls.append(
                StepCall(
                    token_emb.detach().clone(),
                    context.detach().clone(),
                    out.detach().clone(),
                    state,
                    snap,
                    model.training,
                )
            )
            return out

        monkeypatch.setattr(model, "step", step)
        return self
