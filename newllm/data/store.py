"""The newllm cache directory, content hashes, and atomic publication of a built directory."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import filelock

from ..textfiles import blocking_file


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """``override``, else ``$NEWLLM_CACHE``, else ``$XDG_CACHE_HOME/newllm``, else ``~/.cache/newllm``;
    ValueError naming the setting when that path is a file or lies under one."""
    env, xdg = os.environ.get("NEWLLM_CACHE"), os.environ.get("XDG_CACHE_HOME")
    if override is not None:
        path, source = Path(override).expanduser(), "cache directory"
    elif env:
        path, source = Path(env).expanduser(), "$NEWLLM_CACHE"
    else:
        base, source = (
            (Path(xdg).expanduser(), "$XDG_CACHE_HOME") if xdg else (Path.home() / ".cache", "~/.cache")
        )
        path = base / "newllm"
    blocker = blocking_file(path)
    if blocker is not None:
        raise ValueError(
            f"{source} {str(path)!r} cannot be the newllm cache: {str(blocker)!r} is a file, not a directory"
        )
    return path


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def text_sha256(*parts: str) -> str:
    """Hex SHA-256 of the parts, each followed by a NUL byte (so ("ab", "c") != ("a", "bc"))."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def build_once(final: Path, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Return ``(final, built)``: if ``final`` does not exist, ``build(tmp)`` fills a fresh temporary
    directory beside it, which is then renamed to ``final`` in one step.

    A file lock serialises concurrent builders; a reader never sees a half-written directory.
    ``built`` is False when the directory already existed.
    """
    if final.is_dir():
        return final, False
    final.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(final.parent / f".{final.name}.lock")):
        if final.is_dir():
            return final, False
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        try:
            build(tmp)
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, True
