"""Phase 1 epochs: the loops, per-epoch statistics, a progress bar, and the run directory's bookkeeping.

``train_phase1`` reads as a training script: lock the run directory -> resume checks (or a fresh
start) -> for each epoch: the loop, its statistics, a checkpoint, a log line -> the Phase 1 cache.
The run directory (:class:`~newllm.runs.rundir.RunDir`, docs/runs.md) does the bookkeeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import diagnostics
from ..config import SolverConfig
from ..model import CVFPModel
from ..runs.checkpoint import (
    load_checkpoint,
    restore_training_state,
    save_checkpoint,
    training_state,
)
from ..runs.distributed import Dist
from ..runs.jsonio import dumps
from ..runs.manifest import Manifest
from ..runs.rundir import LOG_FILE, Identity, Notice, RunDir, interrupts, open_run
from ..tokens import as_token_tensor
from .cache import build_cache, cache_bytes, samples_digest
from .config import Phase1Config
from .loops import StepModule, needs_input_grad, train_group
from .penalties import project_spectral

__all__ = [
    "LOG_FILE",
    "EpochStats",
    "Phase1Run",
    "TokenRecord",
    "make_optimizer",
    "samples_digest",
    "train_phase1",
]


@dataclass
class TokenRecord:
    epoch: int
    sample: int
    position: int
    token: int
    iterations: int
    converged: bool
    final_loss: float


@dataclass
class EpochStats:
    epoch: int
    tokens: int
    converged: int
    rate: float
    mean_iterations: float
    mean_loss: float
    optimizer_steps: int
    seconds: float
    #: Seed 004's criterion (rate >= success_rate) AND no collapse: a collapsed model is never a success.
    success: bool
    collapsed: bool = False
    context_rms: float = float("nan")
    effective_rank: float = float("nan")
    max_cosine: float = float("nan")


@dataclass
class Phase1Run:
    """Everything a Phase 1 run produced; ``records`` holds per-token records of every epoch run here."""

    model: CVFPModel
    config: Phase1Config
    epochs: list[EpochStats] = field(default_factory=list)
    records: list[TokenRecord] = field(default_factory=list)
    checkpoint: Path | None = None
    cache: Path | None = None
    checkpoint_tag: str | None = None

    @property
    def final(self) -> EpochStats:
        return self.epochs[-1]


def make_optimizer(model: CVFPModel, config: Phase1Config) -> torch.optim.Adam:
    """Adam, as the seeds (004); the fused kernel (same update rule, one pass over the 12.9M-entry
    embedding instead of several) where this torch has it for the model's device."""
    try:
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate)


@dataclass(kw_only=True)
class _Job:
    """The fixed parts of one Phase 1 run: model, token tensors, optimizer, generator, ranks."""

    model: CVFPModel
    config: Phase1Config
    tensors: list[torch.Tensor]
    digest: str
    opt: torch.optim.Optimizer
    gen: torch.Generator
    dist: Dist
    stepper: torch.nn.Module | None
    progress: bool
    #: The bytes of data.json (the data snapshot), when the samples came from ``newllm train --data``.
    data: bytes | None

    @property
    def total_tokens(self) -> int:
        return sum(t.numel() for t in self.tensors)

    def identity(self) -> Identity:
        return Identity(
            kind="phase1",
            settings_key="phase1_config",
            settings=self.config.to_dict(),
            data_key="samples_sha256",
            data_sha256=self.digest,
            data_what="the training samples",
            epochs=self.config.epochs,
            world_size=self.dist.world_size,
            fixed_kinds=("data",),
            files={} if self.data is None else {"data": self.data},
        )


def train_phase1(
    model: CVFPModel,
    samples: Sequence[Sequence[int]],
    config: Phase1Config,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    cache_solver: SolverConfig | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    dist: Dist | None = None,
    data: dict[str, Any] | None = None,
    notice: Notice | None = None,
) -> Phase1Run:
    """Train ``model`` in place for ``config.epochs`` epochs on ``samples`` (lists of token ids).

    With ``out_dir`` (a run directory, locked while training): a checkpoint after every epoch, a
    JSON-lines log, ``data`` as ``data.json``, and at the end the Phase 1 cache (eval-mode fixed points
    via :func:`newllm.solve`, ``cache_solver`` or mse < threshold), all listed in the manifest.
    ``resume`` continues from the checkpoint in ``out_dir`` after the resume checks (a directory without
    one starts at epoch 1); on CPU the result is bit-identical to an uninterrupted run. ``notice``
    receives one-line messages (resuming, starting fresh). Ctrl-C raises
    :class:`~newllm.runs.rundir.RunInterrupted` naming the saved epoch.
    With ``dist`` (batched loop only) the samples of each batch are sharded over the ranks, gradients
    are all-reduced through DistributedDataParallel, and rank 0 writes checkpoints, log and cache.
    """
    dist = dist or Dist.single()
    job = _job(model, samples, config, dist, progress, data)
    if resume and out_dir is None:
        raise ValueError("resume needs out_dir")
    run = Phase1Run(model=model, config=config)
    with open_run(out_dir, main=dist.is_main, gather=dist.gather) as rd, interrupts(rd, config.epochs):
        start = _begin(rd, job, run, resume, notice)
        for epoch in range(start + 1, config.epochs + 1):
            stats = _epoch(job, epoch, run)
            _save(rd, job, run, epoch)
            dist.barrier()
            if on_epoch is not None and dist.is_main:
                on_epoch(stats)
        model.eval()
        if rd is not None and dist.is_main:
            _write_cache(rd, job, run, cache_solver)
    return run


def _job(model, samples, config: Phase1Config, dist: Dist, progress: bool, data) -> _Job:
    if dist.enabled and config.loop != "batched":
        raise ValueError("distributed Phase 1 needs loop='batched' (the spec loop is one token at a time)")
    if dist.enabled and needs_input_grad(config):
        raise ValueError(
            "jacobian_weight/sigma_weight > 0 are not supported with --distributed (DDP and double backward)"
        )
    if config.spectral_scale is not None:
        project_spectral(model, config.spectral_scale)  # start inside the constraint set
    tensors = [as_token_tensor(list(s), model.config.vocab_size) for s in samples]
    if not tensors:
        raise ValueError("Phase 1 needs at least one sample")
    dev = model.token_embedding.weight.device
    gen = torch.Generator(device=dev).manual_seed(config.seed + dist.rank)
    opt = make_optimizer(model, config)
    stepper = None
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        stepper = DistributedDataParallel(StepModule(model), device_ids=None if dev.type == "cpu" else [dev])
    snapshot = None if data is None else (dumps(data, indent=2) + "\n").encode()
    return _Job(
        model=model,
        config=config,
        tensors=tensors,
        digest=samples_digest(samples),
        opt=opt,
        gen=gen,
        dist=dist,
        stepper=stepper,
        progress=progress,
        data=snapshot,
    )


def _begin(rd: RunDir | None, job: _Job, run: Phase1Run, resume: bool, notice: Notice | None) -> int:
    """The epoch to continue after: 0 for a fresh run, else the checkpoint's (weights, Adam, RNG restored)."""
    if rd is None:
        return 0

    def restore(m: Manifest) -> None:
        ck = load_checkpoint(rd, with_optimizer=True, expect_config=job.model.config)
        job.model.load_state_dict(ck.model.state_dict())
        restore_training_state(ck, job.opt, job.gen, job.dist.rank)
        run.epochs = rd.history(m, EpochStats)

    return rd.begin(
        job.identity(), resume=resume, restore=restore, notice=notice if job.dist.is_main else None
    )


def _epoch(job: _Job, epoch: int, run: Phase1Run) -> EpochStats:
    """One epoch over every sample (training mode), gathered over the ranks, with its statistics."""
    job.model.train()
    t0 = time.perf_counter()
    records, steps, ctx_ids, ctxs = _run_epoch(job, epoch)
    if job.dist.enabled:
        parts = job.dist.gather(records)
        records = sorted((r for part in parts for r in part), key=lambda r: (r.sample, r.position))
        gathered = job.dist.gather((ctx_ids, ctxs))
        ctx_ids, ctxs = torch.cat([p[0] for p in gathered]), torch.cat([p[1] for p in gathered])
    collapse = diagnostics.collapse_report(ctxs, ctx_ids)
    stats = _epoch_stats(epoch, records, steps, time.perf_counter() - t0, job.config, collapse)
    run.epochs.append(stats)
    run.records.extend(records)
    return stats


def _save(rd: RunDir | None, job: _Job, run: Phase1Run, epoch: int) -> None:
    """Checkpoint the epoch (rank 0: weights, Adam + every rank's generator, settings, history) and log it."""
    gens = job.dist.gather(job.gen.get_state())  # every rank's dropout/probe RNG, for exact resume
    if rd is None or not job.dist.is_main:
        return
    opt_tensors, groups = training_state(job.opt, gens)
    ident = job.identity()
    fixed = {k: rd.write_unless_listed(k, b, epoch=epoch) for k, b in ident.files.items()}
    state = {
        **ident.state(),
        "history": [asdict(e) for e in run.epochs],
        "optimizer_groups": groups,
        "samples": [len(t) for t in job.tensors],
    }
    run.checkpoint = save_checkpoint(
        rd, job.model, epoch=epoch, optimizer_tensors=opt_tensors, state=state, files=fixed, kind="phase1"
    )
    rd.log({"event": "epoch", **asdict(run.epochs[-1])})


def _write_cache(rd: RunDir, job: _Job, run: Phase1Run, solver: SolverConfig | None) -> None:
    """The Phase 1 cache of the final weights, added to the manifest of the last epoch."""
    ck = load_checkpoint(rd)
    run.checkpoint, run.checkpoint_tag = rd.manifest_path, ck.tag
    solver = solver or SolverConfig(metric="mse", threshold=job.config.threshold, max_iterations=200)
    cache = build_cache(job.model, [t.tolist() for t in job.tensors], solver, checkpoint=ck.tag)
    run.cache = rd.path / rd.attach("cache", cache_bytes(cache)).name
    rate = float(cache.converged.float().mean())
    rd.log({"event": "cache", "checkpoint": ck.tag, "rate": rate, "tokens": int(cache.token_ids.numel())})


def _groups(job: _Job) -> list[tuple[list[tuple[int, int]], torch.Tensor]]:
    """One epoch's groups ``(rows [(sample, position)], ids [n])``: one token each (spec loop) or one
    batch of ``batch_samples`` samples each (batched loop; this rank's shard)."""
    tensors, cfg, dist = job.tensors, job.config, job.dist
    if cfg.loop == "spec":
        return [([(s, p)], t[p : p + 1]) for s, t in enumerate(tensors) for p in range(t.numel())]
    groups = []
    for b in range(0, len(tensors), cfg.batch_samples):
        chunk = list(range(b, min(b + cfg.batch_samples, len(tensors))))[dist.rank :: dist.world_size]
        ids = torch.cat([tensors[s] for s in chunk]) if chunk else torch.zeros(0, dtype=torch.long)
        groups.append(([(s, p) for s in chunk for p in range(tensors[s].numel())], ids))
    return groups


def _where(epoch: int, rows: list[tuple[int, int]], ids: torch.Tensor) -> Callable[[int, int], str]:
    def where(row: int, k: int) -> str:
        s, p = rows[row]
        return f"epoch {epoch}, sample {s}, position {p}, token {int(ids[row])}, iteration {k}"

    return where


def _run_epoch(job: _Job, epoch: int):
    """Train on every group once: ``(records, optimizer steps, token ids [n], last contexts [n, C])``."""
    records: list[TokenRecord] = []
    ctx_ids: list[torch.Tensor] = []
    ctxs: list[torch.Tensor] = []
    steps, conv_count, loss_sum = 0, 0, 0.0
    show = job.progress and job.dist.is_main
    desc = f"phase1 epoch {epoch}/{job.config.epochs}"
    bar = tqdm(
        total=job.total_tokens, desc=desc, unit="tok", disable=not show, leave=False, dynamic_ncols=True
    )
    try:
        for rows, ids in _groups(job):
            o = train_group(
                job.model, job.opt, ids, job.config, job.gen,
                where=_where(epoch, rows, ids), dist=job.dist, stepper=job.stepper,
            )  # fmt: skip
            steps += o.optimizer_steps
            if o.contexts is not None and ids.numel() > 0:
                ctx_ids.append(ids.cpu())
                ctxs.append(o.contexts)
            for row, (s, p) in enumerate(rows):
                rec = TokenRecord(
                    epoch,
                    s,
                    p,
                    int(ids[row]),
                    int(o.iterations[row]),
                    bool(o.converged[row]),
                    float(o.final_loss[row]),
                )
                records.append(rec)
                conv_count += rec.converged
                loss_sum += rec.final_loss
            bar.update(len(rows) * job.dist.world_size)
            if records:
                bar.set_postfix(
                    rate=f"{conv_count / len(records):.3f}", loss=f"{loss_sum / len(records):.4g}"
                )
    finally:
        bar.close()
    ids_all = torch.cat(ctx_ids) if ctx_ids else torch.zeros(0, dtype=torch.long)
    ctx_all = torch.cat(ctxs) if ctxs else torch.zeros(0, job.model.config.context_dim)
    return records, steps, ids_all, ctx_all


def _epoch_stats(
    epoch: int,
    records: list[TokenRecord],
    steps: int,
    seconds: float,
    config: Phase1Config,
    collapse: dict[str, float],
):
    n = len(records)
    conv = sum(r.converged for r in records)
    rate = conv / n
    collapsed = diagnostics.is_collapsed(collapse)
    return EpochStats(
        epoch=epoch,
        tokens=n,
        converged=conv,
        rate=rate,
        mean_iterations=sum(r.iterations for r in records) / n,
        mean_loss=sum(r.final_loss for r in records) / n,
        optimizer_steps=steps,
        seconds=seconds,
        success=rate >= config.success_rate and not collapsed,
        collapsed=collapsed,
        context_rms=collapse["context_rms"],
        effective_rank=collapse["effective_rank"],
        max_cosine=collapse["max_cosine"],
    )
