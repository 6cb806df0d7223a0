"""Solver safeguards against known answers (issue 16): damping, Anderson restarts and the Picard fallback,
each on a map where it must fire and one where it must not, with the counts it must produce."""

from __future__ import annotations
