"""Data-parallel training over several processes (GPUs, or CPU processes with gloo).

A run is started by ``torchrun`` (``asr train --ngpu N`` starts it for one
machine; several machines run ``torchrun --nnodes …`` themselves). Each
process reads RANK, WORLD_SIZE and LOCAL_RANK from its environment,
:func:`init_distributed` joins the process group (NCCL on CUDA, gloo on the
CPU), and :func:`current` tells the trainer which share of each batch is its
own. Process 0 alone writes files.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist

from asr.errors import ModelError


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """The process that writes files."""
        return self.rank == 0

    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` summed over every process (``x`` itself in a one-process run)."""
        if self.world_size > 1:
            x = x.clone()
            tdist.all_reduce(x)
        return x

    def all_gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj`` (picklable), by rank (``[obj]`` in a one-process run);
        every process must call it."""
        if self.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world_size > 1:
            tdist.barrier()


def current() -> Dist:
    """The running process group's rank and size (0 of 1 without one)."""
    if tdist.is_available() and tdist.is_initialized():
        return Dist(tdist.get_rank(), tdist.get_world_size())
    return Dist()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def init_distributed(device: torch.device) -> torch.device:
    """Join the process group torchrun describes in the environment (if any) and
    return this process's device: ``cuda:LOCAL_RANK`` on CUDA, else ``device``."""
    if not launched_by_torchrun() or tdist.is_initialized():
        return device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ModelError(f"process {local_rank} has no GPU: torch sees {torch.cuda.device_count()}")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The command that runs ``python -m asr.cli <argv>`` as ``nproc`` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "asr.cli", *argv]
