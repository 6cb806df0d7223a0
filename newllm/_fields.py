"""Strict field validation shared by every frozen config dataclass.

Every check raises ``ValueError`` naming the field, the bad value and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any, TypeVar

from .textfiles import read_json

T = TypeVar("T")


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """An ``int`` (not a bool) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    _check_range(name, value, lo, hi)
    return value


def check_float(
    name: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """A finite real number in the interval; ``lo_open``/``hi_open`` exclude the end points."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    bad = (lo is not None and (value <= lo if lo_open else value < lo)) or (
        hi is not None and (value >= hi if hi_open else value > hi)
    )
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ValueError(f"{name} must be in {left}{lo_s}, {hi_s}{right}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r} ({type(value).__name__})")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _check_range(name: str, value: int, lo: int | None, hi: int | None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else str(hi)
        raise ValueError(f"{name} must be in [{lo_s}, {hi_s}], got {value!r}")


def from_dict(cls: type[T], data: Any, *, what: str | None = None) -> T:
    """Build a config dataclass from a mapping, rejecting unknown keys by name.

    Keys renamed in the glossary (``cls.RENAMED``: old -> new) are accepted for one release with a
    ``DeprecationWarning`` (so files written by the previous release still load).
    """
    what = what or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object / dict, got {type(data).__name__}")
    data = renamed_keys(cls, data, what)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ValueError(
            f"{what}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(names)}"
        )
    return cls(**data)


def renamed_keys(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    """``data`` with the deprecated keys of ``cls.RENAMED`` replaced by their new names (warning once each)."""
    renamed: dict[str, str] = getattr(cls, "RENAMED", {})
    old = [k for k in data if k in renamed]
    if not old:
        return data
    out = dict(data)
    for k in old:
        new = renamed[k]
        if new in data:
            raise ValueError(f"{what}: both {k!r} (deprecated) and {new!r} given; keep {new!r}")
        warnings.warn(f"{what}: key {k!r} is deprecated, use {new!r}", DeprecationWarning, stacklevel=4)
        out[new] = out.pop(k)
    return out


def from_json(cls: type[T], path: str | Path) -> T:
    """Load a config dataclass from a JSON file (strict: unknown keys raise)."""
    path = Path(path)
    data = read_json(path, "config file")
    return from_dict(cls, data, what=f"{cls.__name__} in {path}")


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out
