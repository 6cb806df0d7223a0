"""The run directory: the one type through which Phase 1 and Phase 2 write a run and every reader reads it.

Layout (docs/runs.md)::

    checkpoint.json          the manifest (newllm.runs.manifest): written last, atomically
    model-E.safetensors      weights after epoch E              (every run)
    optimizer-E.safetensors  Adam tensors + RNG states          (Phase 1, Phase 2)
    head-E.safetensors       the Phase 2 head                   (Phase 2)
    cache.safetensors        the Phase 1 cache                  (Phase 1 at its end; Phase 2 with rebuilt contexts)
    data.json                the data snapshot (train --data)   (Phase 1)
    log.jsonl                one JSON object per event          (a record: never read back, not listed)
    .lock                    the RunLock of the live writer

Every file the manifest lists is verified on every read (size and SHA-256 against the manifest, then
parsed from the verified bytes): a changed, truncated or missing file is a CheckpointError naming it.
A save writes the new files first (per-epoch names), the manifest last (atomic rename), then removes
the files the previous manifest listed and the new one does not: a killed save leaves the previous
epoch complete. A run directory is never a symbolic link (refused on read and on write), and the files
it lists are regular files in it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from .jsonio import atomic_write_bytes, atomic_write_json, dumps
from .lock import RunLock, RunLocked
from .manifest import (
    FILE_KINDS,
    FORMAT,
    LEGACY_FORMAT,
    MANIFEST,
    CheckpointError,
    FileEntry,
    Manifest,
    manifest_from_dict,
    parse_manifest,
)

LOG_FILE = "log.jsonl"
Notice = Callable[[str], None]
T = TypeVar("T")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C while a run directory was being written; ``saved_epoch`` (None: none yet) is safe to resume."""

    def __init__(self, directory: Path, saved_epoch: int | None, epochs: int):
        self.directory, self.saved_epoch, self.epochs = directory, saved_epoch, epochs
        if saved_epoch is None:
            msg = f"interrupted before the first epoch was saved in {str(directory)!r}"
        else:
            msg = f"interrupted; epoch {saved_epoch} of {epochs} is saved in {str(directory)!r}"
        super().__init__(msg)


@dataclass(frozen=True)
class Identity:
    """What a resumed run must share with the run in the directory (stored in the manifest's state)."""

    kind: str
    #: State key and value of the settings; every setting but ``epochs`` must be equal.
    settings_key: str
    settings: dict[str, Any]
    #: State key and value of the data digest (SHA-256 hex), and words for it in the error message.
    data_key: str
    data_sha256: str
    data_what: str
    epochs: int
    world_size: int = 1
    #: Files of fixed content this kind of run may hold (file kinds), and those this run holds (kind -> bytes):
    #: written once, and on resume the saved ones must be byte-identical (a missing one on either side differs).
    fixed_kinds: tuple[str, ...] = ()
    files: dict[str, bytes] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        return {
            self.settings_key: self.settings,
            self.data_key: self.data_sha256,
            "world_size": self.world_size,
        }


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """safetensors bytes of CPU copies of ``tensors`` (one metadata key: the bytes are reproducible)."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return save(cpu, metadata={"format": FORMAT})


class RunDir:
    """A run directory at ``path`` (refused when ``path`` is a symbolic link)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_symlink():
            raise CheckpointError(
                f"run directory {str(self.path)!r} is a symbolic link (to {str(self.path.resolve())!r}): "
                "a run directory is used by its real path only; pass that path instead"
            )
        #: Whether the directory existed when this object was made (``--resume`` on a new path says so).
        self.existed = self.path.is_dir()
        self._manifest: Manifest | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def has_manifest(self) -> bool:
        return self.manifest_path.exists()

    # --- reading: everything verified ---------------------------------------------------------------

    def manifest(self) -> Manifest:
        """The validated manifest (read once per RunDir; CheckpointError naming the file otherwise)."""
        if self._manifest is None:
            if not self.path.exists():
                raise CheckpointError(f"checkpoint directory {str(self.path)!r} does not exist")
            if not self.path.is_dir():
                raise CheckpointError(f"{str(self.path)!r} is not a run directory (it is a file)")
            if not self.manifest_path.is_file():
                raise CheckpointError(f"{str(self.path)!r} is not a checkpoint: no {MANIFEST} in it")
            try:
                data = self.manifest_path.read_bytes()
            except OSError as exc:
                raise CheckpointError(
                    f"cannot read {str(self.manifest_path)!r}: {exc.strerror or exc}"
                ) from None
            self._manifest = parse_manifest(data, self.manifest_path)
        return self._manifest

    def lists(self, kind: str) -> bool:
        return kind in self.manifest().files

    def entry(self, kind: str) -> FileEntry:
        m = self.manifest()
        if kind not in m.files:
            raise CheckpointError(
                f"checkpoint {str(self.path)!r} has no {kind!r} file (it holds {sorted(m.files)})"
            )
        return m.files[kind]

    def read_bytes(self, kind: str) -> bytes:
        """The bytes of the listed file of ``kind``, after checking its size and SHA-256."""
        e = self.entry(kind)
        path = self.path / e.name
        where = f"checkpoint file {str(path)!r}"
        if path.is_symlink():
            raise CheckpointError(f"{where} is a symbolic link: a run directory holds its files itself")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"{where} is missing (listed in {str(self.manifest_path)!r})") from None
        except OSError as exc:
            raise CheckpointError(f"cannot read {where}: {exc.strerror or exc}") from None
        if e.bytes is not None and len(data) != e.bytes:
            raise CheckpointError(
                f"{where} is corrupted or was modified: {len(data)} bytes, the manifest lists {e.bytes}"
            )
        digest = sha256_bytes(data)
        if digest != e.sha256:
            raise CheckpointError(
                f"{where} is corrupted or was modified: sha256 {digest[:16]}... does not match the "
                f"manifest's {e.sha256[:16]}..."
            )
        return data

    def read_tensors(self, kind: str) -> dict[str, torch.Tensor]:
        data = self.read_bytes(kind)
        try:
            return load(data)
        except (SafetensorError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"cannot read tensors from {str(self.path / self.entry(kind).name)!r}: {exc}"
            ) from None

    def read_json(self, kind: str) -> Any:
        data, path = self.read_bytes(kind), self.path / self.entry(kind).name
        try:
            return json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise CheckpointError(f"{str(path)!r} is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{str(path)!r} is not valid JSON: {exc}") from None

    def refuse_unlisted(self, kind: str, hint: str = "") -> None:
        """CheckpointError when the file of ``kind`` is in the directory but the manifest does not list it."""
        name = FILE_KINDS[kind].name(kind, self.manifest().epoch)
        if not self.lists(kind) and (self.path / name).exists():
            raise CheckpointError(
                f"{str(self.path / name)!r} is not listed in {str(self.manifest_path)!r}, so it cannot be "
                f"verified{hint}"
            )

    def refuse_legacy(self, what: str) -> None:
        """CheckpointError for ``what`` (e.g. "phase2 needs its Phase 1 cache") on a previous-format run."""
        if self.manifest().legacy:
            raise CheckpointError(
                f"{str(self.path)!r} was written by an older newllm (manifest format {LEGACY_FORMAT}), which "
                f"did not list the Phase 1 cache and data snapshot with their checksums; {what} cannot be "
                "verified: train the run again with this version (its weights still load; docs/runs.md)"
            )

    # --- writing ------------------------------------------------------------------------------------

    def write(self, kind: str, data: bytes, *, epoch: int) -> FileEntry:
        """Write ``data`` atomically under the name of ``kind`` for ``epoch``; not listed until :meth:`commit`."""
        name = FILE_KINDS[kind].name(kind, epoch)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path / name, data)
        return FileEntry(name=name, sha256=sha256_bytes(data), bytes=len(data))

    def write_unless_listed(self, kind: str, data: bytes, *, epoch: int) -> FileEntry:
        """Like :meth:`write`, but keep the listed file when it already holds exactly ``data``."""
        if self.has_manifest():
            e = self.manifest().files.get(kind)
            if e is not None and e.sha256 == sha256_bytes(data) and (self.path / e.name).is_file():
                return e
        return self.write(kind, data, epoch=epoch)

    def attach(self, kind: str, data: bytes) -> FileEntry:
        """Add (or replace) a fixed-name file in the current manifest: unlist the old one, write, relist.

        A kill at any point leaves a manifest whose every listed file is intact.
        """
        m = self.manifest()
        keep = {k: e for k, e in m.files.items() if k != kind}
        if kind in m.files:
            self.commit(kind=m.kind, epoch=m.epoch, model_config=m.model_config, state=m.state, files=keep)
        entry = self.write(kind, data, epoch=m.epoch)
        files = {**keep, kind: entry}
        self.commit(kind=m.kind, epoch=m.epoch, model_config=m.model_config, state=m.state, files=files)
        return entry

    def commit(
        self,
        *,
        kind: str,
        epoch: int,
        model_config: dict[str, Any],
        state: dict[str, Any],
        files: dict[str, FileEntry],
    ) -> Path:
        """Write the manifest (atomically, last), then remove the files the previous one listed and this one
        does not. The manifest is validated as a reader would before it is written."""
        m = manifest_from_dict(
            {
                "format": FORMAT,
                "kind": kind,
                "epoch": epoch,
                "files": {k: e.to_dict() for k, e in files.items()},
                "model_config": model_config,
                "state": state,
            }
        )
        old = self._listed_names()
        atomic_write_json(self.manifest_path, m.to_dict())
        self._manifest = m
        for name in old - {e.name for e in files.values()}:
            (self.path / name).unlink(missing_ok=True)
        return self.manifest_path

    def _listed_names(self) -> set[str]:
        try:
            return {
                e.name
                for e in parse_manifest(self.manifest_path.read_bytes(), self.manifest_path).files.values()
            }
        except (OSError, CheckpointError):
            return set()

    def history(self, m: Manifest, cls: Callable[..., T]) -> list[T]:
        """``state.history`` of ``m`` (checked by :func:`check_resume`) as ``cls`` objects, one per epoch."""
        try:
            return [cls(**h) for h in m.state["history"]]
        except TypeError as exc:
            raise CheckpointError(
                f"{str(self.manifest_path)!r}: state.history holds an invalid epoch: {exc}"
            ) from None

    def log(self, event: dict[str, Any]) -> None:
        """Append one JSON line to ``log.jsonl``."""
        with open(self.path / LOG_FILE, "a") as fh:
            fh.write(dumps(event) + "\n")

    def saved_epoch(self) -> int | None:
        """The epoch of the manifest on disk now (None when there is none or it cannot be read)."""
        try:
            return parse_manifest(self.manifest_path.read_bytes(), self.manifest_path).epoch
        except (OSError, CheckpointError):
            return None

    # --- the start of a training run ----------------------------------------------------------------

    def begin(
        self,
        ident: Identity,
        *,
        resume: bool,
        restore: Callable[[Manifest], None],
        notice: Notice | None = None,
    ) -> int:
        """Start a training run here: the epoch to continue after (0: a fresh start).

        Without ``resume`` a directory holding a checkpoint is refused. With ``resume``, a directory that
        did not exist or holds no checkpoint starts at epoch 1, saying so through ``notice``; otherwise the
        checkpoint is checked against ``ident`` (:func:`check_resume`), ``restore(manifest)`` loads it, and
        ``notice`` gets "resuming from epoch N of M".
        """
        say = notice or (lambda _msg: None)
        if not self.has_manifest():
            if resume:
                why = "holds no checkpoint yet (no epoch was saved)" if self.existed else "did not exist"
                say(f"note: --resume: {str(self.path)!r} {why}; starting at epoch 1 of {ident.epochs}")
            return 0
        if not resume:
            raise CheckpointError(
                f"{str(self.path)!r} already holds a checkpoint (epoch {self.saved_epoch()}): pass --resume to "
                "continue it, or choose another directory"
            )
        m = self.manifest()
        check_resume(self, m, ident)
        restore(m)
        left = "" if m.epoch < ident.epochs else " (no epochs left to run)"
        say(f"resuming from epoch {m.epoch} of {ident.epochs} in {str(self.path)!r}{left}")
        return m.epoch


def check_resume(rd: RunDir, m: Manifest, ident: Identity) -> None:
    """The resume checks, all in one place: format, kind, settings, data, files, world size, epochs."""
    where = f"cannot resume {str(rd.path)!r}"
    rd.refuse_legacy("--resume")
    if m.kind != ident.kind:
        raise CheckpointError(f"{where}: it is a {m.kind} run, not a {ident.kind} run")
    saved = m.state.get(ident.settings_key)
    if not isinstance(saved, dict):
        raise CheckpointError(f"{where}: {str(rd.manifest_path)!r} holds no {ident.settings_key!r} object")
    differ = {k: (saved.get(k), v) for k, v in ident.settings.items() if k != "epochs" and saved.get(k) != v}
    differ.update({k: (v, None) for k, v in saved.items() if k not in ident.settings})
    if differ:
        raise ValueError(f"{where}: settings differ (saved, given): {differ}")
    if m.state.get(ident.data_key) != ident.data_sha256:
        raise ValueError(f"{where}: {ident.data_what} differ from the checkpoint's")
    for kind in ident.fixed_kinds:
        saved_sha = m.files[kind].sha256 if kind in m.files else None
        given = ident.files.get(kind)
        if saved_sha != (None if given is None else sha256_bytes(given)):
            raise ValueError(
                f"{where}: its {FILE_KINDS[kind].name(kind, 0)} differs from this run's (or only one has it)"
            )
    saved_world = m.state.get("world_size", 1)
    if saved_world != ident.world_size:
        raise ValueError(
            f"{where}: it ran with {saved_world} process(es), this run has {ident.world_size}; "
            "resume with the same world size"
        )
    if m.epoch > ident.epochs:
        raise ValueError(f"{where}: it already ran {m.epoch} epochs, more than epochs={ident.epochs}")
    history = m.state.get("history")
    if (
        not isinstance(history, list)
        or len(history) != m.epoch
        or not all(isinstance(h, dict) for h in history)
    ):
        raise CheckpointError(f"{str(rd.manifest_path)!r}: state.history must list {m.epoch} epoch objects")


@contextmanager
def open_run(
    path: str | Path | None, *, main: bool = True, gather: Callable[[Any], list[Any]] | None = None
) -> Iterator[RunDir | None]:
    """The run directory at ``path``, locked by the main process for the life of the block (None: no path).

    ``gather`` (distributed: every rank's value in rank order) spreads the main rank's lock error to all.
    """
    if path is None:
        yield None
        return
    rd = RunDir(path)
    lock, err = None, None
    if main:
        try:
            lock = RunLock(rd.path).acquire()
        except RunLocked as exc:
            err = str(exc)
    first = (gather or (lambda x: [x]))(err)[0]
    if first:
        raise RunLocked(first)
    try:
        yield rd
    finally:
        if lock is not None:
            lock.release()


@contextmanager
def interrupts(rd: RunDir | None, epochs: int) -> Iterator[None]:
    """Turn Ctrl-C inside the block into :class:`RunInterrupted` naming the epoch that is safe."""
    try:
        yield
    except RunInterrupted:
        raise
    except KeyboardInterrupt:
        if rd is None:
            raise
        saved = rd.saved_epoch()
        try:
            rd.log({"event": "interrupted", "saved_epoch": saved})
        except OSError:
            pass
        raise RunInterrupted(rd.path, saved, epochs) from None
