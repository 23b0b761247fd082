"""The one place that reads the torchrun environment.

    python train.py ...                              # one process: rank 0 of 1
    torchrun --nproc_per_node 2 train.py ...         # RANK, LOCAL_RANK, WORLD_SIZE set by torchrun
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistEnv:
    """Start the process group when launched by torchrun (NCCL on GPU, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} has no GPU: {torch.cuda.device_count()} visible. Start at most "
                               "that many processes per node (torchrun --nproc_per_node), or hide the GPUs "
                               "(CUDA_VISIBLE_DEVICES=) to train on CPU with gloo")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


# x86 CPU flags of bf16 arithmetic in hardware (AVX512-BF16, AMX). Without one, bf16 autocast on the CPU is
# emulated: configs/tiny.yaml trained at 2,768 tokens/s in bf16 against 8,791 in fp32 (0.31x) on an Intel Xeon
# with AVX-512 but neither flag, where an AMD EPYC with avx512_bf16 trained 1.2-1.3x faster in bf16 (README).
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_computes_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has bf16 arithmetic in hardware: a NATIVE_BF16_CPU_FLAGS flag on a `flags` line of
    `cpuinfo` (default: /proc/cpuinfo; where there is none, as on macOS, False: fp32 is the safe guess)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and NATIVE_BF16_CPU_FLAGS & set(value.split()):
            return True
    return False


def uses_bf16(precision: str, device: torch.device, cpuinfo: str | None = None) -> bool:
    """Whether training autocasts to bf16. train.precision "auto": on a GPU, and on a CPU that computes bf16
    in hardware (cpu_computes_bf16); fp32 elsewhere. "bf16" and "fp32" force it either way."""
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_computes_bf16(cpuinfo))
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"unknown train.precision {precision!r}; use auto, fp32 or bf16")
    return precision == "bf16"


def mean_across_ranks(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.is_distributed:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= env.world_size
    return value


def barrier(env: DistEnv) -> None:
    if env.is_distributed:
        dist.barrier()


def shutdown(env: DistEnv) -> None:
    """Tear the process group down once every rank is done with it.

    The barrier keeps a rank that finished first from closing its connections while the others are still
    in their last collective. (With FSDP2, torch 2.13 keeps references to the gloo group after
    destroy_process_group, so its threads live until the interpreter exits: tests/test_train.py's
    torchrun() notes the rare abort at exit that this can give.)
    """
    if env.is_distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
