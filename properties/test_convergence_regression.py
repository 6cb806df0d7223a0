"""Family 4: convergence rate and mean iterations across token counts do not regress against the
committed baseline (``properties/baselines/convergence_<device>.json``), judged by the one gate
(``newllm.tools.gate``: one-sided exact binomial test on the converged count, alpha 0.01; mean
iterations within 2 % + 0.02 + 2/tokens; unexplained improvements fail too). Configurations:
``properties/convergence.py``. After an intended change, regenerate the baseline with
``python -m properties.regenerate_baseline`` (``--device cuda`` for the CUDA one; or
``ci/regenerate-baselines``) and commit it. The CUDA baseline is recorded on the first GPU run (the
test then skips, asking to commit it).
"""

from __future__ import annotations

import pytest
from filelock import FileLock

from newllm.matrix import baseline as B
from newllm.matrix import gate
from properties import convergence as C

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("arch", "state", "rule"), C.CASES, ids=["-".join(c) for c in C.CASES])
def test_convergence_does_not_regress(arch, state, rule, device, model_cache):
    now = C.document(
        C.measure(C.model_for(arch, state, model_cache, device), device, arch, state, rule), device
    )
    path = C.baseline_path(device)
    if device != "cpu":
        with FileLock(str(model_cache / f"baseline-{device}.lock")):
            base = B.read(path) if path.exists() else C.document({}, device)
            if not C.select(base, device, arch, state, rule)["configurations"]:
                B.write(path, C.document({**base["configurations"], **now["configurations"]}, device))
                pytest.skip(f"recorded {device} {arch} {state} {rule} in {path}: commit it")
    assert path.exists(), f"no baseline {path}: run `{C.REGENERATE}`"
    base = C.select(B.read(path), device, arch, state, rule)
    failures, notes = gate.compare(now, base)
    bad = failures + [n for n in notes if n.startswith("NEW")]  # a configuration the baseline lacks
    assert not bad, "convergence changed (regenerate the baseline if intended):\n" + "\n".join(bad)
