"""Several processes (torchrun): who writes the run directory, and how a request reaches every rank.

Only rank 0 writes events, status and markers; the other ranks get writers that do nothing. A stop,
checkpoint or eval request is seen by rank 0 (control files, SIGTERM) or any rank (SIGTERM from
torchrun) and shared with an all-reduce every step, so every rank acts on the same step.
"""

from __future__ import annotations

import os
from typing import Any


def process_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return process_rank() == 0


class NullEventWriter:
    def emit(self, kind: str, **fields: Any) -> dict:
        return {}

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


class NullStatusWriter:
    def update(self, **fields: Any) -> None:
        pass

    def set_step(self, step: int) -> None:
        pass

    def heartbeat(self) -> None:
        pass


def share_flags(flags: list[int], device) -> list[int]:
    """Element-wise max of small integer flags over all ranks (identity with one process)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flags
    t = torch.tensor(flags, dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [int(x) for x in t.tolist()]
