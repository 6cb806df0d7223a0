"""The seed notes' claims, loaded from ``claims.json`` (data, not code) and checked for shape.

A claim names its note (``000`` .. ``004`` -> file name) and section heading, quotes what the note
says (``text``), gives the ``claimed`` value, the ``test`` that compares it with the measurements
(see :mod:`newllm.reproduce.verdicts`), the ``quantity`` that picks the slack, and the ``question``
its primary verdict answers (``single_run``: is the note's number a plausible single run;
``typical``: is it the typical value). Each of its ``measure`` variants is one set of conditions
under which it is judged: a single selection of measured rows (``exp``, ``judge``, ``where``,
``field``), or a pair ``a``/``b`` for comparisons. Variants marked ``"own": true`` are the note's own
reading and decide the primary verdict (``reading`` says why, where that is not plain); the others
are context. One entry marked ``"control": true`` is the untrained control of a training claim.
``also`` lists other sections of the notes that repeat the same number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

QUESTIONS = ("single_run", "typical")
SINGLE_TESTS = ("approx", "at_least", "below", "above", "range")
PAIRED_TESTS = ("less", "greater", "equal", "ratio")
TESTS = SINGLE_TESTS + PAIRED_TESTS


@dataclass(frozen=True)
class Selection:
    """Measured rows of experiment ``exp`` under ``judge`` whose keys equal ``where``; value ``field``."""

    exp: str
    judge: str
    field: str
    where: dict[str, Any]


@dataclass(frozen=True)
class Variant:
    label: str
    a: Selection
    b: Selection | None = None
    #: The note's own reading (decides the primary verdict).
    own: bool = False


@dataclass(frozen=True)
class Claim:
    id: str
    note: str
    section: str
    text: str
    test: str
    quantity: str
    claimed: Any
    variants: tuple[Variant, ...]
    question: str = "typical"
    also: tuple[tuple[str, str], ...] = ()
    #: The same test on the untrained model (training claims): tags a trivial pass.
    control: Variant | None = None
    #: Why the own variants are the note's reading (when not plain from the text).
    reading: str | None = None

    @property
    def own(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if v.own)

    @property
    def paired(self) -> bool:
        return self.test in PAIRED_TESTS


@dataclass(frozen=True)
class ClaimsData:
    notes: dict[str, dict[str, str]]
    slack: dict[str, dict[str, float]]
    claims: tuple[Claim, ...]
    unmeasured: tuple[dict[str, str], ...]
    consistency: tuple[dict[str, Any], ...]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def note_file(self, note: str) -> str:
        return self.notes[note]["file"]

    def sections(self) -> set[tuple[str, str]]:
        """Every (note, section) a claim, an ``also`` entry, an unmeasured entry or a check names."""
        out = set()
        for c in self.claims:
            out.add((c.note, c.section))
            out.update(c.also)
        out.update((u["note"], u["section"]) for u in self.unmeasured)
        out.update((k["note"], k["section"]) for k in self.consistency)
        return out


@lru_cache(maxsize=1)
def load_claims() -> ClaimsData:
    """The packaged ``claims.json``, validated and with templates expanded."""
    text = resources.files("newllm.reproduce").joinpath("claims.json").read_text(encoding="utf-8")
    return parse_claims(json.loads(text))


def parse_claims(raw: dict[str, Any]) -> ClaimsData:
    """Validate the claims document; ValueError names the claim and the bad field."""
    for key in ("notes", "slack", "templates", "claims", "unmeasured", "consistency"):
        if key not in raw:
            raise ValueError(f"claims data lacks the {key!r} section")
    notes, slack, templates = raw["notes"], raw["slack"], raw["templates"]
    claims = []
    seen: set[str] = set()
    for c in raw["claims"]:
        cid = c.get("id", "?")
        if cid in seen:
            raise ValueError(f"claim id {cid!r} appears twice")
        seen.add(cid)
        for k in ("note", "section", "text", "test", "quantity", "claimed", "question", "measure"):
            if k not in c:
                raise ValueError(f"claim {cid!r} lacks {k!r}")
        if c["note"] not in notes:
            raise ValueError(f"claim {cid!r}: unknown note {c['note']!r}; expected one of {sorted(notes)}")
        if c["test"] not in TESTS:
            raise ValueError(f"claim {cid!r}: unknown test {c['test']!r}; expected one of {TESTS}")
        if c["quantity"] not in slack:
            raise ValueError(f"claim {cid!r}: quantity {c['quantity']!r} has no slack entry")
        if c["question"] not in QUESTIONS:
            raise ValueError(
                f"claim {cid!r}: unknown question {c['question']!r}; expected one of {QUESTIONS}"
            )
        _check_claimed(cid, c["test"], c["claimed"])
        variants, controls = _variants(cid, c, templates)
        if not variants:
            raise ValueError(f"claim {cid!r} has no measurement variant")
        if not any(v.own for v in variants):
            raise ValueError(f"claim {cid!r} has no variant marked own (the note's reading)")
        if len(controls) > 1:
            raise ValueError(f"claim {cid!r} has {len(controls)} controls; expected at most one")
        for v in variants + controls:
            if (v.b is None) == (c["test"] in PAIRED_TESTS):
                raise ValueError(
                    f"claim {cid!r}: test {c['test']!r} and variant {v.label!r} disagree on pairing"
                )
        for a in c.get("also", []):
            if a[0] not in notes:
                raise ValueError(f"claim {cid!r}: 'also' names unknown note {a[0]!r}")
        claims.append(
            Claim(
                id=cid,
                note=c["note"],
                section=c["section"],
                text=c["text"],
                test=c["test"],
                quantity=c["quantity"],
                claimed=c["claimed"],
                variants=variants,
                question=c["question"],
                also=tuple((a[0], a[1]) for a in c.get("also", [])),
                control=controls[0] if controls else None,
                reading=c.get("reading"),
            )
        )
    return ClaimsData(
        notes=notes,
        slack=slack,
        claims=tuple(claims),
        unmeasured=tuple(raw["unmeasured"]),
        consistency=tuple(raw["consistency"]),
        raw=raw,
    )


def _check_claimed(cid: str, test: str, claimed: Any) -> None:
    if test == "range":
        ok = isinstance(claimed, list) and len(claimed) == 2 and claimed[0] <= claimed[1]
    elif test in ("less", "greater", "equal"):
        ok = claimed is None
    else:
        ok = isinstance(claimed, int | float) and not isinstance(claimed, bool)
    if not ok:
        raise ValueError(f"claim {cid!r}: claimed value {claimed!r} does not suit test {test!r}")


def _selection(cid: str, spec: dict[str, Any], where: dict[str, Any], default_field: str | None) -> Selection:
    fld = spec.get("field", default_field)
    if not fld or "exp" not in spec or "judge" not in spec:
        raise ValueError(f"claim {cid!r}: a measurement needs exp, judge and field, got {spec!r}")
    return Selection(
        exp=spec["exp"], judge=spec["judge"], field=fld, where={**spec.get("where", {}), **where}
    )


def _variants(
    cid: str, c: dict[str, Any], templates: dict[str, list]
) -> tuple[tuple[Variant, ...], tuple[Variant, ...]]:
    """The claim's variants and its control entries (``"control": true``), templates expanded."""
    m = c["measure"]
    extra: dict[str, Any] = {}
    if isinstance(m, dict):
        if m.get("template") not in templates:
            raise ValueError(f"claim {cid!r}: unknown template {m.get('template')!r}")
        extra = m.get("where", {})
        specs = templates[m["template"]]
    else:
        specs = m
    fld = c.get("field")
    own_labels = set(c.get("own", []))
    out: list[Variant] = []
    controls: list[Variant] = []
    for s in specs:
        own = bool(s.get("own")) if not own_labels else s["label"] in own_labels
        if "a" in s:
            v = Variant(
                s["label"], _selection(cid, s["a"], extra, fld), _selection(cid, s["b"], extra, fld), own
            )
        else:
            v = Variant(label=s["label"], a=_selection(cid, s, extra, fld), own=own)
        (controls if s.get("control") else out).append(v)
    unknown = own_labels - {v.label for v in out}
    if unknown:
        raise ValueError(f"claim {cid!r}: 'own' names no variant {sorted(unknown)}")
    return tuple(out), tuple(controls)
