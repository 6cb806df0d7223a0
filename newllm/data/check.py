"""A local source file checked before ``datasets`` reads it: one ValueError naming the file, line and problem.

- ``.txt``: UTF-8 text holding at least one non-blank paragraph.
- ``.jsonl``/``.json``: UTF-8; one JSON object per non-blank line, or one JSON array of objects; at
  least one record; every record a dialogue (``messages``) or plain-text (``text``) record
  (:func:`newllm.data.records.check_record`).

Reading, decoding and JSON errors come from :mod:`newllm.textfiles` (regular files only, strict UTF-8,
no lone surrogates, no ``NaN``).
"""

from __future__ import annotations

from pathlib import Path

from ..textfiles import FileFormatError, parse_json, read_text
from .records import check_record

SCHEMA = '{"messages": [{"role": ..., "content": ...}, ...]} or {"text": "..."}'


def check_local_file(path: Path, kind: str) -> int:
    """Validate the local source file ``path`` (``kind``: ``json`` or ``text``); returns its record count."""
    text = read_text(path, "data file")
    where = f"data file {str(path)!r}"
    if kind == "text":
        paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
        if not paragraphs:
            raise FileFormatError(f"{where} holds no text: expected blank-line separated paragraphs")
        return len(paragraphs)
    if text.lstrip().startswith("["):
        records = parse_json(text, where)
        places = [f"{where} record {i}" for i in range(len(records))]
    else:
        records, places = [], []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                records.append(parse_json(line, f"{where} line {n}"))
                places.append(f"{where} line {n}")
    if not records:
        raise FileFormatError(f"{where} holds no records: expected one JSON object per line, {SCHEMA}")
    for rec, place in zip(records, places, strict=True):
        check_record(rec, place)
    return len(records)
