"""The machine a run uses: its device, CPU threads, autocast and memory format, and the checks made
once before a run folder is touched."""
from __future__ import annotations

import contextlib
import os
from typing import Callable

import torch

from tempered_gan.config.train_config import TrainConfig
from tempered_gan.data.loaders import Data
from tempered_gan.data.registry import dataset_kind
from tempered_gan.errors import UserError
from tempered_gan.training.wandb_log import check_wandb_installed
from tempered_gan.util.distributed import SINGLE_PROCESS, Dist


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but no CUDA GPU is available")
    return device


def preflight(cfg: TrainConfig, data: Data, dist: Dist = SINGLE_PROCESS) -> torch.device:
    """Checks that need the data or the machine, made once per run, before a run
    folder is touched; returns the run's device."""
    if cfg.batch_size * dist.world > len(data):
        raise UserError(f"batch size {cfg.batch_size} × {dist.world} processes is larger than the data set "
                        f"({len(data)} samples)")
    device = pick_device(cfg.device)
    if dist.active and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if cfg.wandb and dist.main:
        check_wandb_installed()
    if cfg.cuda_graphs and device.type != "cuda":
        raise UserError(f"--cuda-graphs needs a CUDA device; this run is on {device.type}")
    if dist.main and (cfg.eval_every or dataset_kind(cfg.dataset).points):   # the 2-D mixtures end with an evaluation
        from tempered_gan.metrics import EvalSettings, evaluator
        evaluator(EvalSettings.of_run(cfg, device))   # a missing weights file or data-set label, or features that do
        # not fit the data, fail here, not mid-run or after the last step
    return device


def use_thread_policy(cfg: TrainConfig, device: torch.device) -> None:
    """The MLP nets of the 2-D mixtures gain nothing from several CPU threads, and on busy cores
    spin-waiting threads made the default demo ten times slower (measured under load: 9 min 35 s
    against 59 s with one thread, the same numbers; docs/DECISIONS.md). One thread for them on the
    CPU, unless OMP_NUM_THREADS says otherwise: set for the process when a run starts (``train``),
    whoever starts it (``tempered-gan train``, ``compare``, a ``compare --jobs`` worker)."""
    if cfg.arch == "mlp" and device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def autocast_for(cfg: TrainConfig, device: torch.device, graphs: bool) -> Callable[[], contextlib.AbstractContextManager]:
    """The forward passes' autocast (``--amp bf16``). No autocast cache in CUDA
    graphs: a replay must not reuse casts from capture time."""
    return lambda: torch.autocast(device.type, torch.bfloat16, enabled=cfg.amp == "bf16",
                                  cache_enabled=False if graphs else None)


def memory_format_for(cfg: TrainConfig, data: Data) -> torch.memory_format:
    return torch.channels_last if cfg.channels_last and data.kind == "image" else torch.preserve_format
