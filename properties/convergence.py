"""Family 4's configurations and measurement (shared by the test and the regenerate command), picked
from the experiment matrix (``newllm.matrix``).

Models: the regression models of ``newllm.matrix.regression`` for the notes' two architectures
(Sequential, Layer-wise): the seeds' full-size models (dims 256, vocab 50,259, seed 0), untrained or
trained once per code version through the matrix cache (recipe 001 with the batched loop on the
spread ids at 1, 10, 100 and 512 tokens, on CPU with one thread, then moved to the device).

Configurations: Picard from zero contexts in eval mode, one torch thread, on the ``spread`` ids
(100, 200, ...; stride 98 for 512) at each count in :data:`COUNTS`, under the decision rules of the
state (:data:`RULES`): untrained ``mse_w100`` and ``seed000`` (mse / l2 < 0.01, warmup 100, max 200:
seed 000's settings), trained ``mse`` and ``l2`` (warmup 0, max 200: "no warmup needed with
training", 001/002).

The comparison with the committed baseline is the one gate, ``newllm.tools.gate`` (one-sided exact
binomial test on the converged count at alpha 0.01; mean iterations within 2 % + 0.02 + 2/tokens).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from newllm.matrix import NOTES_ARCHITECTURES, build
from newllm.matrix import baseline as B
from newllm.matrix import regression as R
from newllm.model import CVFPModel

COUNTS = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 512)
RULES = {"untrained": ("mse_w100", "seed000"), "trained": ("mse", "l2")}
METHOD = "picard"
#: (arch, state, rule): one test each.
CASES = [(a, s, r) for a in NOTES_ARCHITECTURES for s in R.STATES for r in RULES[s]]
BASELINES = Path(__file__).parent / "baselines"
REGENERATE = "python -m properties.regenerate_baseline"


def baseline_path(device: str) -> Path:
    return BASELINES / f"convergence_{torch.device(device).type}.json"


def model_for(arch: str, state: str, cache_root: str | Path | None, device: str = "cpu") -> CVFPModel:
    """The regression model, trained (on CPU) through the matrix cache under ``cache_root``."""
    return build(R.spec(arch, state), cache_root).model.to(device).eval()


def select(doc: dict[str, Any], device: str, arch: str, state: str, rule: str) -> dict[str, Any]:
    """``doc`` restricted to the configurations of one test (device, arch, state, rule)."""
    want = (torch.device(device).type, arch, state, rule, METHOD)

    def of(e: dict[str, Any]) -> tuple:
        s = e.get("settings", {})
        return (
            s.get("device"),
            s.get("arch"),
            s.get("state"),
            s.get("rule", {}).get("name"),
            s.get("method"),
        )

    return {**doc, "configurations": {k: e for k, e in doc["configurations"].items() if of(e) == want}}


def measure(model: CVFPModel, device: str, arch: str, state: str, rule: str) -> dict[str, dict[str, Any]]:
    """name -> entry (the baseline format) for every count in :data:`COUNTS`."""
    out = {}
    for n in COUNTS:
        name, entry = R.measure(
            model, device=device, arch=arch, state=state, rule=rule, method=METHOD, tokens=n
        )
        out[name] = entry
    return out


def document(configurations: dict[str, dict[str, Any]], device: str) -> dict[str, Any]:
    """A result/baseline document of family 4's ``configurations`` measured on ``device``."""
    dev = torch.device(device).type
    return B.document(
        configurations,
        R.settings(),
        about=f"newllm convergence baseline ({dev}) of properties/test_convergence_regression.py; "
        f"regenerate with `{REGENERATE} --device {dev}` (or ci/regenerate-baselines)",
        command=f"{REGENERATE} --device {dev}",
    )
