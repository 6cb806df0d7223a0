"""``newllm.testing``: the property suite as checks any CVFP model can be run against (docs/verify.md).

``check_model(model)`` runs every check of :data:`CHECKS` and returns a :class:`CheckReport`;
``parametrize_with_checks(models)`` makes one pytest test per model and check. A model is anything
satisfying :mod:`newllm.protocol` (``embed``, ``step``, ``initial_context`` on an ``nn.Module``).
"""

from .check import CHECKS, check_model, check_names, run_check
from .collapse import judge_collapse
from .compare import solve_mismatches, take
from .gate import load_baseline, make_baseline
from .parametrize import parametrize_with_checks
from .parity import batch_step_gap, compare_copies
from .probe import Probe
from .report import STATUSES, CheckReport, CheckResult

__all__ = [
    "CHECKS",
    "STATUSES",
    "batch_step_gap",
    "CheckReport",
    "CheckResult",
    "Probe",
    "check_model",
    "check_names",
    "compare_copies",
    "judge_collapse",
    "load_baseline",
    "make_baseline",
    "parametrize_with_checks",
    "run_check",
    "solve_mismatches",
    "take",
]
