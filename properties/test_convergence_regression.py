"""Family 4: convergence rate and mean iterations across token counts do not regress against the
committed baseline (``properties/baselines/convergence_<device>.json``). Configurations, the test
and its margins: ``properties/convergence.py``. After an intended change, regenerate the baseline
with ``python -m properties.regenerate_baseline`` (``--device cuda`` for the CUDA one) and commit it.
The CUDA baseline is recorded on the first GPU run (the test then skips, asking to commit it).
"""

from __future__ import annotations

import pytest
from filelock import FileLock

from properties import convergence as C

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric", C.METRICS)
@pytest.mark.parametrize("state", C.STATES)
@pytest.mark.parametrize("arch", C.ARCHS)
def test_convergence_does_not_regress(arch, state, metric, device, train_cache):
    label = f"{device}: {arch} {state} {metric}"
    path = C.baseline_path(device)
    now = C.measure(C.model_for(arch, state, train_cache, device), state, metric)
    if device != "cpu":
        with FileLock(str(train_cache / f"baseline-{device}.lock")):
            base = C.load(path) if path.exists() else C.new_baseline(device)
            if C.key(arch, state, metric) not in base["configurations"]:
                base["configurations"][C.key(arch, state, metric)] = now
                C.save(path, base)
                pytest.skip(f"recorded {label} in {path}: commit it")
    assert path.exists(), f"no baseline {path}: run `python -m properties.regenerate_baseline`"
    base = C.load(path)
    assert base["settings"] == C.settings(), (
        f"{path} was made with other settings: regenerate it (python -m properties.regenerate_baseline)"
    )
    bad = C.regressions(label, base["configurations"][C.key(arch, state, metric)], now)
    assert not bad, "convergence regressed:\n" + "\n".join(bad)
