"""Phase 2 epochs: train the head on the training pairs, score it and the count baselines on the
validation pairs, checkpoint atomically after every epoch (exact resume on CPU), log JSON lines.

A Phase 2 run directory is a newllm checkpoint: ``model-E`` holds the (unchanged) Phase 1 weights, so
``load_checkpoint``/``newllm solve --checkpoint`` work on it; ``head-E`` holds the head, ``optimizer-E``
Adam's state and the shuffle generator; the manifest's ``state`` holds the settings, the solver
and context mode of the contexts, the split and the history.
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

from ..model import CVFPModel
from ..phase1.cache import Phase1Cache
from ..runs import checkpoint as ckpt
from ..runs.jsonio import dumps
from ..runs.lock import RunLock
from .baselines import baseline_scores, unigram_probs
from .config import Phase2Config
from .head import PredictionHead, build_head
from .pairs import Pairs, next_token_pairs
from .scores import Scores, scores
from .split import sample_keys, split_samples

LOG_FILE = "log.jsonl"
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
) -> Phase2Run:
    """Train a head on ``cache``'s contexts of ``model`` (the Phase 1 model, left unchanged).

    Samples are split by ``conversation_ids`` (else by sample index); with ``config.assistant_only``
    ``loss_masks`` selects the targets. ``state`` is stored in the checkpoint manifest as well.
    """
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
    run = Phase2Run(
        head=head,
        config=config,
        baselines=baseline_scores(train, val, v),
        split=split,
        train_pairs=train,
        val_pairs=val,
    )
    lock = RunLock(out_dir).acquire() if out_dir is not None else None
    try:
        _train(run, model, cache, train, val, out_dir, resume, progress, on_epoch, state or {})
    finally:
        if lock is not None:
            lock.release()
    return run


def _train(run, model, cache, train: Pairs, val: Pairs, out_dir, resume, progress, on_epoch, extra) -> None:
    config, head = run.config, run.head
    gen = torch.Generator().manual_seed(config.seed + 1)
    opt = torch.optim.Adam(head.parameters(), lr=config.learning_rate)
    digest = data_digest(cache, train, val)
    out = Path(out_dir) if out_dir is not None else None
    start = 0
    if resume:
        if out is None:
            raise ValueError("resume needs out_dir")
        start, history = _restore(out, model, head, opt, gen, config, digest)
        run.epochs = [Phase2Epoch(**h) for h in history]
    elif out is not None and (out / ckpt.MANIFEST).exists():
        raise ValueError(
            f"{str(out)!r} already holds a checkpoint: pass resume=True (--resume) or another directory"
        )
    contexts = cache.contexts
    for epoch in range(start + 1, config.epochs + 1):
        t0 = time.perf_counter()
        head.train()
        perm = torch.randperm(len(train), generator=gen)
        total = 0.0
        bar = tqdm(
            range(0, len(train), config.batch_size),
            desc=f"phase2 epoch {epoch}/{config.epochs}",
            unit="batch",
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        for a in bar:
            idx = perm[a : a + config.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = Fn.cross_entropy(head(contexts[train.rows[idx]]), train.target[idx])
            if not bool(torch.isfinite(loss)):
                raise ValueError(f"non-finite Phase 2 loss at epoch {epoch}, batch {a // config.batch_size}")
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(list(head.parameters()), config.grad_clip)
            opt.step()
            total += float(loss.detach()) * idx.numel()
        head.eval()
        val_scores = evaluate(head, contexts, val)
        stats = Phase2Epoch(epoch, total / len(train), val_scores.to_dict(), time.perf_counter() - t0)
        run.epochs.append(stats)
        if out is not None:
            opt_tensors, groups = ckpt.optimizer_to_tensors(opt)
            opt_tensors["rng.generator"] = gen.get_state()
            st = {
                **extra,
                "phase2_config": config.to_dict(),
                "data_sha256": digest,
                "context_mode": cache.context_mode,
                "solver": cache.solver,
                "cache_checkpoint": cache.checkpoint,
                "split": run.split,
                "baselines": {k: s.to_dict() for k, s in run.baselines.items()},
                "history": [asdict(e) for e in run.epochs],
                "optimizer_groups": groups,
            }
            run.checkpoint = ckpt.save_checkpoint(
                out,
                model,
                epoch=epoch,
                optimizer_tensors=opt_tensors,
                state=st,
                extras={HEAD_FILE: head.state_dict()},
            )
            with open(out / LOG_FILE, "a") as fh:
                fh.write(dumps({"event": "epoch", **asdict(stats)}) + "\n")
        if on_epoch is not None:
            on_epoch(stats)


def _restore(out: Path, model, head, opt, gen, config: Phase2Config, digest: str):
    c = ckpt.load_checkpoint(out, with_optimizer=True, expect_config=model.config, extras=(HEAD_FILE,))
    state = c.manifest.get("state", {})
    saved = state.get("phase2_config", {})
    differ = {
        k: (saved.get(k), v) for k, v in config.to_dict().items() if k != "epochs" and saved.get(k) != v
    }
    if differ:
        raise ValueError(f"cannot resume {str(out)!r}: Phase 2 settings differ (saved, given): {differ}")
    if state.get("data_sha256") != digest:
        raise ValueError(
            f"cannot resume {str(out)!r}: the contexts or the split differ from the checkpoint's"
        )
    if any(
        not torch.equal(a, b)
        for a, b in zip(c.model.state_dict().values(), model.state_dict().values(), strict=True)
    ):
        raise ValueError(f"cannot resume {str(out)!r}: its Phase 1 weights differ from the given model's")
    if c.epoch > config.epochs:
        raise ValueError(
            f"cannot resume {str(out)!r}: it already ran {c.epoch} epochs, more than epochs={config.epochs}"
        )
    head.load_state_dict(c.extras[HEAD_FILE])
    tensors = c.optimizer_tensors or {}
    if "rng.generator" not in tensors:
        raise ckpt.CheckpointError(f"checkpoint {str(out)!r} has no optimizer/RNG state to resume from")
    ckpt.optimizer_from_tensors(opt, tensors, state.get("optimizer_groups", []))
    gen.set_state(tensors["rng.generator"])
    return c.epoch, list(state.get("history", []))


def load_phase2(directory: str | Path) -> tuple[CVFPModel, PredictionHead, dict[str, Any]]:
    """``(Phase 1 model, head, manifest state)`` of a Phase 2 run directory, verified, in eval mode."""
    c = ckpt.load_checkpoint(directory, extras=(HEAD_FILE,))
    state = c.manifest.get("state", {})
    if "phase2_config" not in state:
        raise ckpt.CheckpointError(
            f"{str(directory)!r} is not a Phase 2 checkpoint (no phase2_config in its state)"
        )
    cfg = Phase2Config.from_dict(state["phase2_config"])
    head = build_head(c.model, tie=cfg.tie)
    try:
        head.load_state_dict(c.extras[HEAD_FILE])
    except RuntimeError as exc:
        raise ckpt.CheckpointError(f"the head in {str(directory)!r} does not fit: {exc}") from None
    head.eval()
    return c.model, head, state
