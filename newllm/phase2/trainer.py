"""Phase 2 epochs: train the head on the training pairs, score it and the count baselines on the
validation pairs, checkpoint atomically after every epoch (exact resume on CPU), log JSON lines.

``train_phase2`` reads as a training script: split and pairs -> lock the run directory -> resume checks
(or a fresh start) -> for each epoch: train, score, checkpoint, log. A Phase 2 run directory
(:class:`~newllm.runs.rundir.RunDir`, docs/runs.md) is a newllm checkpoint: ``model-E`` holds the
(unchanged) Phase 1 weights, so ``load_checkpoint``/``newllm solve --checkpoint`` work on it;
``head-E`` holds the head, ``optimizer-E`` Adam's state and the shuffle generator, ``cache.safetensors``
the contexts when they are not the Phase 1 run's own (``keep_cache``); the manifest's ``state`` holds
the settings, the solver and context mode of the contexts, the split and the history.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as Fn
from tqdm.auto import tqdm

from ..config import SolverConfig
from ..model import CVFPModel
from ..phase1.cache import Phase1Cache, cache_bytes, samples_digest
from ..runs.checkpoint import (
    CheckpointError,
    load_checkpoint,
    restore_training_state,
    save_checkpoint,
    training_state,
)
from ..runs.manifest import Manifest
from ..runs.rundir import LOG_FILE, Identity, Notice, RunDir, interrupts, open_run
from .baselines import baseline_scores, unigram_probs
from .config import Phase2Config
from .head import PredictionHead, build_head
from .pairs import Pairs, next_token_pairs
from .scores import Scores, scores
from .split import sample_keys, split_samples

__all__ = ["LOG_FILE", "Phase2Epoch", "Phase2Run", "data_digest", "evaluate", "load_phase2", "train_phase2"]

HEAD_FILE = "head"


@dataclass
class Phase2Epoch:
    epoch: int
    train_loss: float
    val: dict[str, Any]
    seconds: float


@dataclass
class Phase2Run:
    head: PredictionHead
    config: Phase2Config
    baselines: dict[str, Scores]
    split: dict[str, Any]
    #: The training and validation pairs (not stored in the checkpoint).
    train_pairs: Pairs
    val_pairs: Pairs
    epochs: list[Phase2Epoch] = field(default_factory=list)
    checkpoint: Path | None = None

    @property
    def final(self) -> Phase2Epoch:
        return self.epochs[-1]


def data_digest(cache: Phase1Cache, train: Pairs, val: Pairs) -> str:
    """SHA-256 of the contexts, the tokens and the chosen pairs: resume refuses any other data."""
    h = hashlib.sha256()
    for t in (cache.contexts, cache.token_ids, cache.offsets, train.rows, val.rows):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def evaluate(head: PredictionHead, contexts: torch.Tensor, pairs: Pairs, batch_size: int = 1024) -> Scores:
    """Cross-entropy, perplexity and top-1 accuracy of ``head`` on ``pairs`` (no grad)."""
    logp, correct = [], []
    with torch.no_grad():
        for a in range(0, len(pairs), batch_size):
            logits = head(contexts[pairs.rows[a : a + batch_size]])
            tgt = pairs.target[a : a + batch_size]
            lp = torch.log_softmax(logits.double(), dim=-1)
            logp.append(lp.gather(1, tgt[:, None]).squeeze(1))
            correct.append(logits.argmax(dim=-1) == tgt)
    return scores(torch.cat(logp), torch.cat(correct))


@dataclass(kw_only=True)
class _Job:
    """The fixed parts of one Phase 2 run: the Phase 1 model and contexts, the head, optimizer, generator."""

    model: CVFPModel
    cache: Phase1Cache
    config: Phase2Config
    head: PredictionHead
    train: Pairs
    val: Pairs
    opt: torch.optim.Optimizer
    gen: torch.Generator
    digest: str
    progress: bool
    #: Stored in the manifest's state as well (e.g. the Phase 1 run it came from).
    extra: dict[str, Any]
    #: The cache's bytes when the run directory keeps its own copy (contexts rebuilt in another mode).
    cache_file: bytes | None

    @classmethod
    def start(
        cls, model, cache: Phase1Cache, run: Phase2Run, *, progress: bool, extra, keep_cache: bool
    ) -> _Job:
        """Adam on the head, the shuffle generator (seed + 1) and the data digest of ``run``'s pairs."""
        return cls(
            model=model,
            cache=cache,
            config=run.config,
            head=run.head,
            train=run.train_pairs,
            val=run.val_pairs,
            opt=torch.optim.Adam(run.head.parameters(), lr=run.config.learning_rate),
            gen=torch.Generator().manual_seed(run.config.seed + 1),
            digest=data_digest(cache, run.train_pairs, run.val_pairs),
            progress=progress,
            extra=extra,
            cache_file=cache_bytes(cache) if keep_cache else None,
        )

    def identity(self) -> Identity:
        return Identity(
            kind="phase2",
            settings_key="phase2_config",
            settings=self.config.to_dict(),
            data_key="data_sha256",
            data_sha256=self.digest,
            data_what="the contexts or the split",
            epochs=self.config.epochs,
            fixed_kinds=("cache",),
            files={} if self.cache_file is None else {"cache": self.cache_file},
        )


def train_phase2(
    model: CVFPModel,
    cache: Phase1Cache,
    config: Phase2Config,
    *,
    conversation_ids: Sequence[str] | None = None,
    loss_masks: Sequence[Sequence[int]] | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[Phase2Epoch], None] | None = None,
    state: dict[str, Any] | None = None,
    keep_cache: bool = False,
    notice: Notice | None = None,
) -> Phase2Run:
    """Train a head on ``cache``'s contexts of ``model`` (the Phase 1 model, left unchanged).

    Samples are split by ``conversation_ids`` (else by sample index); with ``config.assistant_only``
    ``loss_masks`` selects the targets. ``state`` is stored in the checkpoint manifest as well;
    ``keep_cache`` stores ``cache`` in the run directory (listed, verified on read). ``resume``,
    ``notice`` and Ctrl-C as in :func:`~newllm.phase1.train_phase1`.
    """
    run = _prepare(model, cache, config, conversation_ids, loss_masks)
    job = _Job.start(model, cache, run, progress=progress, extra=state or {}, keep_cache=keep_cache)
    if resume and out_dir is None:
        raise ValueError("resume needs out_dir")
    with open_run(out_dir) as rd, interrupts(rd, config.epochs):
        start = _begin(rd, job, run, resume, notice)
        for epoch in range(start + 1, config.epochs + 1):
            run.epochs.append(_epoch(job, epoch))
            if rd is not None:
                _save(rd, job, run, epoch)
            if on_epoch is not None:
                on_epoch(run.epochs[-1])
    return run


def _prepare(model, cache: Phase1Cache, config: Phase2Config, conversation_ids, loss_masks) -> Phase2Run:
    """The split, the pairs of both sides, the initial head and the baselines."""
    if config.assistant_only and loss_masks is None:
        raise ValueError("assistant_only needs the loss masks of the samples (a run with data.json)")
    if cache.contexts.shape[1] != model.config.context_dim:
        raise ValueError(
            f"cache contexts have dim {cache.contexts.shape[1]}, the model's context_dim is {model.config.context_dim}"
        )
    keys = sample_keys(cache.num_samples, conversation_ids)
    train_s, val_s = split_samples(keys, config.val_fraction, config.split_seed)
    masks = loss_masks if config.assistant_only else None
    train = next_token_pairs(cache.token_ids, cache.offsets, train_s, masks)
    val = next_token_pairs(cache.token_ids, cache.offsets, val_s, masks)
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"need next-token pairs on both sides of the split, got {len(train)} train and {len(val)} validation"
        )
    v = model.config.vocab_size
    split = {
        "train_conversations": len(train_s),
        "val_conversations": len(val_s),
        "train_positions": len(train),
        "val_positions": len(val),
        "val_keys": [keys[s] for s in val_s],
    }
    head = build_head(model, tie=config.tie, seed=config.seed, std=config.init_std)
    if config.standardize:
        head.set_standardization(cache.contexts[train.rows])
    if config.unigram_bias:
        head.set_bias(unigram_probs(train.target, v).log())
    baselines = baseline_scores(train, val, v)
    return Phase2Run(
        head=head, config=config, baselines=baselines, split=split, train_pairs=train, val_pairs=val
    )


def _begin(rd: RunDir | None, job: _Job, run: Phase2Run, resume: bool, notice: Notice | None) -> int:
    """The epoch to continue after: 0 for a fresh run, else the checkpoint's (head, Adam, shuffle restored)."""
    if rd is None:
        return 0

    def restore(m: Manifest) -> None:
        ck = load_checkpoint(rd, with_optimizer=True, expect_config=job.model.config, extras=(HEAD_FILE,))
        saved, given = ck.model.state_dict(), job.model.state_dict()
        if any(not torch.equal(saved[k], given[k]) for k in given):
            raise ValueError(
                f"cannot resume {str(rd.path)!r}: its Phase 1 weights differ from the given model's"
            )
        _load_head(job.head, ck)
        restore_training_state(ck, job.opt, job.gen)
        run.epochs = rd.history(m, Phase2Epoch)

    return rd.begin(job.identity(), resume=resume, restore=restore, notice=notice)


def _epoch(job: _Job, epoch: int) -> Phase2Epoch:
    """One pass over the shuffled training pairs, then the validation scores."""
    config, head, train, contexts = job.config, job.head, job.train, job.cache.contexts
    t0 = time.perf_counter()
    head.train()
    perm = torch.randperm(len(train), generator=job.gen)
    total = 0.0
    desc = f"phase2 epoch {epoch}/{config.epochs}"
    batches = range(0, len(train), config.batch_size)
    for a in tqdm(
        batches, desc=desc, unit="batch", disable=not job.progress, leave=False, dynamic_ncols=True
    ):
        idx = perm[a : a + config.batch_size]
        job.opt.zero_grad(set_to_none=True)
        loss = Fn.cross_entropy(head(contexts[train.rows[idx]]), train.target[idx])
        if not bool(torch.isfinite(loss)):
            raise ValueError(f"non-finite Phase 2 loss at epoch {epoch}, batch {a // config.batch_size}")
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(list(head.parameters()), config.grad_clip)
        job.opt.step()
        total += float(loss.detach()) * idx.numel()
    head.eval()
    val_scores = evaluate(head, contexts, job.val)
    return Phase2Epoch(epoch, total / len(train), val_scores.to_dict(), time.perf_counter() - t0)


def _save(rd: RunDir, job: _Job, run: Phase2Run, epoch: int) -> None:
    """Checkpoint the epoch (Phase 1 weights, head, Adam + shuffle generator, settings, history) and log it."""
    opt_tensors, groups = training_state(job.opt, [job.gen.get_state()])
    ident = job.identity()
    fixed = {k: rd.write_unless_listed(k, b, epoch=epoch) for k, b in ident.files.items()}
    cache = job.cache
    state = {
        **job.extra,
        **ident.state(),
        "samples_sha256": samples_digest([cache.sample(s)[0].tolist() for s in range(cache.num_samples)]),
        "context_mode": cache.context_mode,
        "solver": cache.solver,
        "cache_checkpoint": cache.checkpoint,
        "split": run.split,
        "baselines": {k: s.to_dict() for k, s in run.baselines.items()},
        "history": [asdict(e) for e in run.epochs],
        "optimizer_groups": groups,
    }
    run.checkpoint = save_checkpoint(
        rd, job.model, epoch=epoch, optimizer_tensors=opt_tensors, state=state,
        extras={HEAD_FILE: job.head.state_dict()}, files=fixed, kind="phase2",
    )  # fmt: skip
    rd.log({"event": "epoch", **asdict(run.epochs[-1])})


def _load_head(head: PredictionHead, ck) -> None:
    try:
        head.load_state_dict((ck.extras or {})[HEAD_FILE])
    except RuntimeError as exc:
        raise CheckpointError(f"the head in {str(ck.path)!r} does not fit: {exc}") from None


def load_phase2(directory: str | Path) -> tuple[CVFPModel, PredictionHead, dict[str, Any]]:
    """``(Phase 1 model, head, manifest state)`` of a Phase 2 run directory, verified, in eval mode.

    The state's ``phase2_config``, ``solver`` and ``context_mode`` are validated (:func:`phase2_solver`).
    """
    rd = RunDir(directory)
    m = rd.manifest()
    if m.kind != "phase2":
        raise CheckpointError(
            f"{str(rd.path)!r} is a {m.kind} run directory, not a Phase 2 one (use the --out of newllm phase2)"
        )
    c = load_checkpoint(rd, extras=(HEAD_FILE,))
    try:
        cfg = Phase2Config.from_dict(c.state.get("phase2_config"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise CheckpointError(f"{str(rd.manifest_path)!r}: invalid phase2_config: {exc}") from None
    phase2_solver(c.state, rd.manifest_path)
    head = build_head(c.model, tie=cfg.tie)
    _load_head(head, c)
    head.eval()
    return c.model, head, c.state


def phase2_solver(state: dict[str, Any], where: Path | str = "the manifest") -> SolverConfig:
    """The SolverConfig (with its context mode) a Phase 2 run's contexts were made with."""
    try:
        return SolverConfig.from_dict({**state.get("solver", {}), "context_mode": state.get("context_mode")})
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{str(where)!r}: invalid solver or context_mode in state: {exc}") from None
