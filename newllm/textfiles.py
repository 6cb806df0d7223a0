"""Reading text and JSON files a user names: one ``ValueError`` naming the file, where and what was expected.

Every user-given text file (samples files, local data sources, benchmark JSON) is read through
:func:`read_text`: a regular file (not a directory, FIFO or device, which could block or never end),
at most :data:`MAX_BYTES`, strict UTF-8 (the error names the line, column and byte offset of the first
bad byte). :func:`parse_json` refuses ``NaN``/``Infinity`` unless allowed, and nesting too deep for
Python's parser (its ``RecursionError``), and strings holding lone surrogates (``"\\ud800"``: valid JSON,
but not text any tokenizer or UTF-8 output can take), naming line and column of a syntax error.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

#: Largest file read (bytes): 4 GiB.
MAX_BYTES = 4 << 30


class FileFormatError(ValueError):
    """A user-given file that cannot be read or does not hold what was expected (message names the file)."""


def read_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of the regular file ``path``; FileFormatError naming ``what`` and the path otherwise."""
    p = Path(path)
    where = f"{what} {str(p)!r}"
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FileFormatError(f"{where} does not exist") from None
    except OSError as exc:
        raise FileFormatError(f"cannot read {where}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileFormatError(f"{where} is a directory: expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise FileFormatError(f"{where} is not a regular file (a device, FIFO or socket): expected a file")
    if st.st_size > MAX_BYTES:
        raise FileFormatError(f"{where} holds {st.st_size} bytes: at most {MAX_BYTES} are read")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"cannot read {where}: {exc.strerror or exc}") from None


def blocking_file(path: Path) -> Path | None:
    """The first existing one of ``path``'s ancestors and ``path`` itself that is not a directory (None: every
    existing one is): what keeps ``path`` from being made, or used, as a directory."""
    for p in (*reversed(path.parents), path):
        if p.exists() and not p.is_dir():
            return p
    return None


def decode_utf8(data: bytes, where: str) -> str:
    """``data`` as strict UTF-8 text; FileFormatError naming ``where``, the line, column and byte otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FileFormatError(
            f"{where} is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, column {col} "
            f"(offset {exc.start}); expected UTF-8"
        ) from None


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of the regular file ``path`` (see the module doc)."""
    return decode_utf8(read_bytes(path, what), f"{what} {str(path)!r}")


def parse_json(text: str, where: str, *, constants: bool = False) -> Any:
    """``json.loads(text)``; FileFormatError naming ``where`` (and line/column) for invalid JSON, for nesting
    too deep to parse, for lone surrogates, and for ``NaN``/``Infinity`` unless ``constants``."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        value = json.loads(text, parse_constant=None if constants else no_constant)
    except json.JSONDecodeError as exc:
        raise FileFormatError(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise FileFormatError(f"{where} nests JSON arrays/objects too deeply to read") from None
    except ValueError as exc:
        raise FileFormatError(f"{where} is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):
        bad = lone_surrogate(value)
        if bad is not None:
            raise FileFormatError(
                f"{where} holds a string with a lone surrogate at {bad} (an escape like \\ud800 without its "
                "pair): expected Unicode text"
            )
    return value


def read_json(path: str | os.PathLike[str], what: str, *, constants: bool = False) -> Any:
    """The JSON value of the regular UTF-8 file ``path`` (see :func:`parse_json`)."""
    return parse_json(read_text(path, what), f"{what} {str(path)!r}", constants=constants)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def lone_surrogate(value: Any, path: str = "$") -> str | None:
    """The JSON path (``$.a[2]``) of the first string (key or value) in ``value`` holding a lone surrogate."""
    if isinstance(value, str):
        return None if _is_text(value) else path
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = lone_surrogate(v, f"{path}[{i}]")
            if found:
                return found
    elif isinstance(value, dict):
        for k, v in value.items():
            if not _is_text(k):
                return f"{path} (a key)"
            found = lone_surrogate(v, f"{path}.{k}")
            if found:
                return found
    return None


def _is_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
