"""Process-group context for data-parallel Phase 1 (``torchrun ... -m newllm train --distributed``).

``Dist.single()`` is the one-process no-op; ``Dist.from_env()`` joins the group that torchrun set
up (gloo on CPU, nccl on CUDA). Rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def single() -> Dist:
        return Dist()

    @staticmethod
    def from_env(backend: str | None = None) -> Dist:
        """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR...)."""
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ValueError(
                f"--distributed needs torchrun's environment (missing {', '.join(missing)}): "
                "launch with `torchrun --nproc-per-node N -m newllm train --distributed ...`"
            )
        cuda = torch.cuda.is_available()
        backend = backend or ("nccl" if cuda else "gloo")
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        device = torch.device("cpu")
        if backend == "nccl":
            local = int(os.environ.get("LOCAL_RANK", rank))
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        return Dist(rank=rank, world_size=world, device=device)

    def sum_int(self, value: int) -> int:
        """Sum of an integer over all ranks."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.long, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return int(t.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def shutdown(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
