"""Phase 1 epochs: the loops, per-epoch statistics, a progress bar, a JSON-lines log,
atomic end-of-epoch checkpoints with exact resume, and the Phase 1 cache."""

from __future__ import annotations

import hashlib
import json
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
from ..runs import checkpoint as ckpt
from ..runs.distributed import Dist
from ..runs.jsonio import dumps
from ..runs.lock import RunLock, RunLocked
from ..tokens import as_token_tensor
from .cache import CACHE_FILE, build_cache, save_cache
from .config import Phase1Config
from .loops import StepModule, train_group

LOG_FILE = "log.jsonl"


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


def samples_digest(samples: Sequence[Sequence[int]]) -> str:
    return hashlib.sha256(json.dumps([list(map(int, s)) for s in samples]).encode()).hexdigest()


def make_optimizer(model: CVFPModel, config: Phase1Config) -> torch.optim.Adam:
    """Adam, as the seeds (004); the fused kernel (same update rule, one pass over the 12.9M-entry
    embedding instead of several) where this torch has it for the model's device."""
    try:
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate)


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
) -> Phase1Run:
    """Train ``model`` in place for ``config.epochs`` epochs on ``samples`` (lists of token ids).

    With ``out_dir``: a checkpoint after every epoch, a JSON-lines log, and at the end the Phase 1
    cache (eval-mode fixed points via :func:`newllm.solve`, ``cache_solver`` or mse < threshold).
    ``resume`` continues from the checkpoint in ``out_dir`` (from the start when the run was killed
    before its first checkpoint); on CPU the result is bit-identical to an uninterrupted run. ``out_dir`` is locked (:class:`~newllm.runs.lock.RunLock`) while training.
    With ``dist`` (batched loop only) the samples of each batch are sharded over the ranks, gradients
    are all-reduced through DistributedDataParallel, and rank 0 writes checkpoints, log and cache.
    """
    dist = dist or Dist.single()
    lock, err = None, None
    if out_dir is not None and dist.is_main:
        try:
            lock = RunLock(out_dir).acquire()
        except RunLocked as exc:
            err = str(exc)
    first_err = dist.gather(err)[0]
    if first_err:
        raise RunLocked(first_err)
    try:
        return _train(model, samples, config, out_dir, resume, progress, cache_solver, on_epoch, dist)
    finally:
        if lock is not None:
            lock.release()


def _train(
    model, samples, config, out_dir, resume, progress, cache_solver, on_epoch, dist: Dist
) -> Phase1Run:
    if dist.enabled and config.loop != "batched":
        raise ValueError("distributed Phase 1 needs loop='batched' (the spec loop is one token at a time)")
    if dist.enabled and config.jacobian_weight > 0:
        raise ValueError("jacobian_weight > 0 is not supported with --distributed (DDP and double backward)")
    tensors = [as_token_tensor(list(s), model.config.vocab_size) for s in samples]
    if not tensors:
        raise ValueError("Phase 1 needs at least one sample")
    digest = samples_digest(samples)
    dev = model.token_embedding.weight.device
    gen = torch.Generator(device=dev).manual_seed(config.seed + dist.rank)
    opt = make_optimizer(model, config)
    stepper = None
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        stepper = DistributedDataParallel(StepModule(model), device_ids=None if dev.type == "cpu" else [dev])
    run = Phase1Run(model=model, config=config)
    start = 0
    history: list[dict[str, Any]] = []
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ValueError("resume needs out_dir")
    if resume and (out / ckpt.MANIFEST).exists():  # type: ignore[operator]
        start, history = _restore(out, model, opt, gen, config, digest, dist)
        run.epochs = [EpochStats(**h) for h in history]
    elif out is not None and (out / ckpt.MANIFEST).exists():
        raise ValueError(
            f"{str(out)!r} already holds a checkpoint: pass resume=True (--resume) or another directory"
        )

    total_tokens = sum(t.numel() for t in tensors)
    for epoch in range(start + 1, config.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        records, steps, ctx_ids, ctxs = _run_epoch(
            model, opt, tensors, config, gen, epoch, total_tokens, progress and dist.is_main, dist, stepper
        )
        if dist.enabled:
            records = sorted(
                (r for part in dist.gather(records) for r in part), key=lambda r: (r.sample, r.position)
            )
            parts = dist.gather((ctx_ids, ctxs))
            ctx_ids, ctxs = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        collapse = diagnostics.collapse_report(ctxs, ctx_ids)
        stats = _epoch_stats(epoch, records, steps, time.perf_counter() - t0, config, collapse)
        run.epochs.append(stats)
        run.records.extend(records)
        history.append(asdict(stats))
        gen_states = dist.gather(gen.get_state())  # every rank's dropout/probe RNG, for exact resume
        if out is not None and dist.is_main:
            opt_tensors, groups = ckpt.optimizer_to_tensors(opt)
            for r, st in enumerate(gen_states):
                opt_tensors["rng.generator" if r == 0 else f"rng.generator.{r}"] = st
            state = {
                "phase1_config": config.to_dict(),
                "samples_sha256": digest,
                "history": history,
                "optimizer_groups": groups,
                "samples": [len(t) for t in tensors],
                "world_size": dist.world_size,
            }
            run.checkpoint = ckpt.save_checkpoint(
                out, model, epoch=epoch, optimizer_tensors=opt_tensors, state=state
            )
            with open(out / LOG_FILE, "a") as fh:
                fh.write(dumps({"event": "epoch", **asdict(stats)}) + "\n")
        dist.barrier()
        if on_epoch is not None and dist.is_main:
            on_epoch(stats)

    model.eval()
    if out is not None and dist.is_main:
        loaded = ckpt.load_checkpoint(out)
        run.checkpoint = out / ckpt.MANIFEST
        run.checkpoint_tag = loaded.tag
        solver = cache_solver or SolverConfig(metric="mse", threshold=config.threshold, max_iterations=200)
        cache = build_cache(model, [t.tolist() for t in tensors], solver, checkpoint=loaded.tag)
        save_cache(out / CACHE_FILE, cache)
        run.cache = out / CACHE_FILE
        with open(out / LOG_FILE, "a") as fh:
            fh.write(
                dumps(
                    {
                        "event": "cache",
                        "checkpoint": loaded.tag,
                        "rate": float(cache.converged.float().mean()),
                        "tokens": int(cache.token_ids.numel()),
                    }
                )
                + "\n"
            )
    return run


def _run_epoch(model, opt, tensors, config, gen, epoch, total_tokens, progress, dist: Dist, stepper):
    records: list[TokenRecord] = []
    ctx_ids: list[torch.Tensor] = []
    ctxs: list[torch.Tensor] = []
    steps = 0
    conv_count = 0
    loss_sum = 0.0
    bar = tqdm(
        total=total_tokens,
        desc=f"phase1 epoch {epoch}/{config.epochs}",
        unit="tok",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )
    try:
        if config.loop == "spec":
            groups = [(s, p, t[p : p + 1]) for s, t in enumerate(tensors) for p in range(t.numel())]
        else:
            groups = []
            for b in range(0, len(tensors), config.batch_samples):
                chunk = list(range(b, min(b + config.batch_samples, len(tensors))))[
                    dist.rank :: dist.world_size
                ]
                ids = torch.cat([tensors[s] for s in chunk]) if chunk else torch.zeros(0, dtype=torch.long)
                groups.append((chunk, None, ids))
        for s, p, ids in groups:
            if p is None:
                where_rows = [(si, pi) for si in s for pi in range(tensors[si].numel())]
            else:
                where_rows = [(s, p)]

            def where(row: int, k: int, _w=where_rows, _ids=ids) -> str:
                si, pi = _w[row]
                return f"epoch {epoch}, sample {si}, position {pi}, token {int(_ids[row])}, iteration {k}"

            o = train_group(model, opt, ids, config, gen, where=where, dist=dist, stepper=stepper)
            steps += o.optimizer_steps
            if o.contexts is not None and ids.numel() > 0:
                ctx_ids.append(ids.cpu())
                ctxs.append(o.contexts)
            for row, (si, pi) in enumerate(where_rows):
                rec = TokenRecord(
                    epoch,
                    si,
                    pi,
                    int(ids[row]),
                    int(o.iterations[row]),
                    bool(o.converged[row]),
                    float(o.final_loss[row]),
                )
                records.append(rec)
                conv_count += rec.converged
                loss_sum += rec.final_loss
            bar.update(len(where_rows) * dist.world_size)
            if records:
                bar.set_postfix(
                    rate=f"{conv_count / len(records):.3f}", loss=f"{loss_sum / len(records):.4g}"
                )
    finally:
        bar.close()
    c_dim = model.config.context_dim
    ids_all = torch.cat(ctx_ids) if ctx_ids else torch.zeros(0, dtype=torch.long)
    ctx_all = torch.cat(ctxs) if ctxs else torch.zeros(0, c_dim)
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


def _restore(out: Path, model, opt, gen, config: Phase1Config, digest: str, dist: Dist):
    c = ckpt.load_checkpoint(out, with_optimizer=True, expect_config=model.config)
    state = c.manifest.get("state", {})
    saved = state.get("phase1_config", {})
    mine = config.to_dict()
    differ = {k: (saved.get(k), v) for k, v in mine.items() if k != "epochs" and saved.get(k) != v}
    if differ:
        raise ValueError(f"cannot resume {str(out)!r}: Phase 1 settings differ (saved, given): {differ}")
    if state.get("samples_sha256") != digest:
        raise ValueError(f"cannot resume {str(out)!r}: the training samples differ from the checkpoint's")
    saved_world = int(state.get("world_size", 1))
    if saved_world != dist.world_size:
        raise ValueError(
            f"cannot resume {str(out)!r}: it ran with {saved_world} process(es), this run has "
            f"{dist.world_size}; resume with the same world size"
        )
    if c.epoch > config.epochs:
        raise ValueError(
            f"cannot resume {str(out)!r}: it already ran {c.epoch} epochs, more than epochs={config.epochs}"
        )
    model.load_state_dict(c.model.state_dict())
    tensors = c.optimizer_tensors or {}
    if "rng.generator" not in tensors:
        raise ckpt.CheckpointError(f"checkpoint {str(out)!r} has no optimizer/RNG state to resume from")
    ckpt.optimizer_from_tensors(opt, tensors, state.get("optimizer_groups", []))
    gen.set_state(tensors["rng.generator" if dist.rank == 0 else f"rng.generator.{dist.rank}"])
    return c.epoch, list(state.get("history", []))
