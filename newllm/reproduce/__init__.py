"""``newllm reproduce``: every numeric table of the seed notes regenerated, claimed vs measured.

:func:`run_reproduction` runs a :class:`Plan` (``quick_plan()`` or ``full_plan()``) into a directory and
writes ``report.md`` (tables, PNG figures) and ``report.json``. The claims are data (``claims.json``);
the verdicts are computed (:mod:`newllm.reproduce.verdicts`).
"""

from .claims import load_claims
from .plan import Plan, full_plan, quick_plan
from .runner import Reproduction, run_reproduction

__all__ = ["Plan", "Reproduction", "full_plan", "load_claims", "quick_plan", "run_reproduction"]
