"""What :func:`~newllm.testing.check_model` returns: one :class:`CheckResult` per check, in a :class:`CheckReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: ``passed``: judged and fine; ``failed``: judged and not fine (``detail`` says which tokens, what
#: numbers); ``skipped``: not judged (no CUDA, no contraction claimed, ...), numbers still measured.
STATUSES = ("passed", "failed", "skipped")


@dataclass
class CheckResult:
    """Outcome of one named check: ``status`` in :data:`STATUSES`, a one-paragraph ``detail``, the
    measured ``numbers`` (JSON-ready) and the wall time in ``seconds``."""

    name: str
    status: str
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {self.status!r}")

    @classmethod
    def judged(cls, name: str, ok: bool, detail: str, **numbers: Any) -> CheckResult:
        """``passed`` when ``ok`` else ``failed``."""
        return cls(name, "passed" if ok else "failed", detail, numbers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "numbers": self.numbers,
            "seconds": self.seconds,
        }


@dataclass
class CheckReport:
    """Every check's result, plus what they ran on (``settings``: model, token ids, solver, seed, claims)."""

    results: list[CheckResult]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No check failed (skipped ones do not count against it)."""
        return not self.failed

    @property
    def failed(self) -> list[str]:
        """Names of the failed checks, in run order."""
        return [r.name for r in self.results if r.status == "failed"]

    def __getitem__(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no check {name!r} in this report; ran: {', '.join(r.name for r in self.results)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (docs/verify.md "JSON"): ``passed``, ``failed``, ``counts``, the settings, ``checks``."""
        counts = {s: sum(r.status == s for r in self.results) for s in STATUSES}
        return {
            "passed": self.passed,
            "failed": self.failed,
            "counts": counts,
            **self.settings,
            "checks": [r.to_dict() for r in self.results],
        }

    def table(self) -> list[str]:
        """Readable lines: one row per check (name, status, seconds, detail), then the counts."""
        lines = [f"{'check':<20} {'status':<8} {'seconds':>7}  detail"]
        for r in self.results:
            lines.append(f"{r.name:<20} {r.status:<8} {r.seconds:>7.2f}  {r.detail}")
        c = self.to_dict()["counts"]
        lines.append(
            f"{len(self.results)} checks: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
        )
        return lines
