"""Multi-process (DDP) training helpers for ``configs/multi_gpu_train.yaml``, CUDA (NCCL) or CPU (gloo)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from contextloss_monai.utils import is_main_process

__all__ = ["init_distributed", "distributed_device", "wrap_distributed", "is_main_process", "destroy_distributed"]


def init_distributed() -> int:
    """Initialise the default process group from ``torchrun``'s environment (NCCL with CUDA, else gloo);
    return this process's rank. A no-op when already initialised."""
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank()


def distributed_device() -> torch.device:
    """This process's device: ``cuda:<LOCAL_RANK>`` when CUDA is available (and made current), else CPU."""
    if torch.cuda.is_available():
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def wrap_distributed(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``network`` moved to ``device``."""
    network = network.to(device)
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(network, device_ids=device_ids)


def destroy_distributed() -> None:
    """Tear the process group down (if any), after a barrier: no rank closes its connections while another
    still uses them (gloo aborts a process torn down under a peer's traffic: "terminate called without an
    active exception", seen once in CI on the two-node test)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
