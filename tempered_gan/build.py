"""From a configuration to the objects a run is made of: the machine (device,
threads, the checks made before a run folder is touched), the random streams,
the nets, the optimisers and the tempering.

Random streams: G, D and the lens are initialised from generators of their own,
and noise, data order, penalty interpolates and instance noise each have their
own stream, all derived from the seed. Adding a tempering therefore changes
nothing else: same initial G and D, same batches, same noise.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from typing import Callable

import torch
from torch import nn

from .config import TrainConfig
from .data import Data
from .datasets import dataset_kind
from .distributed import SINGLE_PROCESS, Dist, average_gradients
from .errors import UserError
from .exits import lambda_schedule
from .lens import make_lens, zero_last_layer
from .nets import make_nets, xavier_init_
from .tempering import BaseTempering, GaussianBlur, InstanceNoise, NoTempering, Tempering

OPTIMIZER_IMPLEMENTATION = ("capturable", "fused", "foreach")   # how an optimiser steps, not what it computes


# --- the machine -------------------------------------------------------------------

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
    if cfg.cuda_graphs and device.type != "cuda":
        raise UserError(f"--cuda-graphs needs a CUDA device; this run is on {device.type}")
    if dist.main and (cfg.eval_every or dataset_kind(cfg.dataset).points):   # the 2-D mixtures end with an evaluation
        from .metrics import EvalSettings, evaluator
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


# --- random streams and data order -----------------------------------------------

def seed_for(seed: int, stream: str) -> int:
    """A seed for one named random stream, stable across processes and versions."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:7], "little")


def random_stream(cfg: TrainConfig, name: str, device: torch.device, dist: Dist = SINGLE_PROCESS) -> torch.Generator:
    """The generator of stream ``name`` on ``device``, one per process (rank 0 uses
    the single-process stream, so one process is the world = 1 case)."""
    suffix = f"/rank{dist.rank}" if dist.rank else ""
    return torch.Generator(device).manual_seed(seed_for(cfg.seed, name + suffix))


class EpochSampler:
    """Batches of indices from a fresh permutation every epoch (last partial
    batch dropped). Its position is two integers, so resuming is exact.

    With several processes, each takes its own slice of ``batch_size`` indices
    from the same permutation: the processes together see ``world × batch_size``
    distinct samples per step."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.position = 0, 0
        self._perm, self._perm_epoch = None, -1

    def next(self) -> torch.Tensor:
        stride = self.batch_size * self.world
        if self.position + stride > self.n:
            self.epoch, self.position = self.epoch + 1, 0
        if self._perm_epoch != self.epoch:
            g = torch.Generator().manual_seed(seed_for(self.seed, f"data-epoch-{self.epoch}"))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), self.epoch
        start = self.position + self.rank * self.batch_size
        self.position += stride
        return self._perm[start:start + self.batch_size]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]


# --- nets, optimisers, tempering -----------------------------------------------------

def init_net(net: nn.Module, seed: int, stream: str) -> nn.Module:
    return xavier_init_(net, torch.Generator().manual_seed(seed_for(seed, stream)))


def build_nets(cfg: TrainConfig, sample_shape: tuple) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """G, D and the lens (None without one), each initialised from its own stream.

    Construction runs inside ``fork_rng`` so that PyTorch's default
    initialisers, which draw from the global generator, leave it untouched.
    """
    with torch.random.fork_rng(devices=[]):
        G, D = make_nets(cfg.arch, sample_shape, cfg.z_dim, cfg.width)
        init_net(G, cfg.seed, "G")
        init_net(D, cfg.seed, "D")
        lens = None
        if cfg.tempering == "lens":
            lens = init_net(make_lens(sample_shape, cfg.lens_width, cfg.lens_blocks), cfg.seed, "lens")
            if cfg.lens_zero_init:
                zero_last_layer(lens)
    return G, D, lens


def make_optimizer(cfg: TrainConfig, params, capturable: bool = False) -> torch.optim.Optimizer:
    """Adam or RMSprop. ``capturable`` (CUDA graphs): step counts live on the
    GPU so that a graph can replay the update, and Adam is fused (one kernel)."""
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, capturable=capturable)
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), capturable=capturable,
                            **({"fused": True} if capturable else {}))


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict) -> None:
    """``opt.load_state_dict(state)``, keeping how ``opt`` steps as this run made it
    (capturable and fused for CUDA graphs, plain for eager): PyTorch restores those
    flags from the checkpoint, so an eager run resumed with ``--cuda-graphs`` got
    optimisers that cannot be captured, and a graphs run resumed eagerly on the CPU
    ones that cannot step there. The step counters follow the flags: float32 on
    the parameters' device when capturable or fused, on the CPU otherwise."""
    own = [{k: group[k] for k in OPTIMIZER_IMPLEMENTATION if k in group} for group in opt.param_groups]
    opt.load_state_dict(state)
    for group, flags in zip(opt.param_groups, own):
        group.update(flags)
        on_device = bool(group.get("capturable") or group.get("fused"))
        for p in group["params"]:
            step = opt.state.get(p, {}).get("step")
            if torch.is_tensor(step):
                opt.state[p]["step"] = step.to(device=p.device if on_device else "cpu", dtype=torch.float32)


def make_tempering(cfg: TrainConfig, lens: nn.Module | None, device: torch.device, dist: Dist,
                   autocast: Callable[[], contextlib.AbstractContextManager], capturable: bool) -> BaseTempering:
    """The run's tempering (:class:`NoTempering` for ``--tempering none``), the one place that picks its kind."""
    if cfg.tempering == "none":
        return NoTempering()
    schedule = lambda_schedule(cfg)
    if cfg.tempering == "noise":
        # A stream of its own (one per process): G's noise, data order and penalty draws stay those of every other arm.
        return InstanceNoise(schedule, cfg.noise_sigma, random_stream(cfg, "instance-noise", device, dist))
    if cfg.tempering == "blur":
        return GaussianBlur(schedule, cfg.blur_sigma)
    lens_opt = make_optimizer(dataclasses.replace(cfg, optimizer="adam", lr=cfg.lens_lr), lens.parameters(),
                              capturable=capturable)
    return Tempering(lens, schedule, cfg.loss, lens_opt, cfg.reconstruction,
                     before_update=lambda m: average_gradients(m, dist.world), autocast=autocast)
