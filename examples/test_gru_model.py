"""The newllm checks against the third-party GRU-cell model (examples/gru_model.py): one pytest test
per check, ``test_newllm_checks[gru-finite]`` ... ``[gru-collapse]``. Copy this file next to your own
model (docs/verify.md). The model is claimed contractive: its exact σ_max at the fixed points is
0.92 (seed 0), so ``contraction`` and ``uniqueness`` are judged."""

from examples.gru_model import build
from newllm.testing import parametrize_with_checks


@parametrize_with_checks([("gru", build)], contractive=True)
def test_newllm_checks(model, check):
    check(model)
