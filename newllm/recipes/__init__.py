"""The Phase 1 recipe benchmark (issue 18): the input-injection variant (:mod:`.inject`), the
measurements (:mod:`.measure`), the goals (:mod:`.judge`), the run (:mod:`.bench`) and its report
(:mod:`.report`). The recipes themselves live in the one registry, :data:`newllm.matrix.RECIPES`."""

from .inject import InjectedModel, train_injected
from .measure import FIXED, RULE, Plain, carry_vs_reset, probe_accuracy, solve_sequences

__all__ = [
    "FIXED",
    "InjectedModel",
    "Plain",
    "RULE",
    "carry_vs_reset",
    "probe_accuracy",
    "solve_sequences",
    "train_injected",
]
