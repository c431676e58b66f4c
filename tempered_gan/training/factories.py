"""From a configuration to the objects a run is made of: the nets (each from its own random stream),
the optimisers, the λ schedule, the tempering and the policy that ends it."""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable

import torch
from torch import nn

from tempered_gan.config.train_config import TrainConfig
from tempered_gan.method.augment import DiffAugment, parse_policy
from tempered_gan.method.exits import ExitPolicy
from tempered_gan.method.lens import LambdaSchedule, make_lens, zero_last_layer
from tempered_gan.method.nets import make_nets, xavier_init_
from tempered_gan.method.tempering import BaseTempering, GaussianBlur, InstanceNoise, NoTempering, Tempering
from tempered_gan.training.randomness import random_stream, seed_for
from tempered_gan.util.distributed import Dist, average_gradients

OPTIMIZER_IMPLEMENTATION = ("capturable", "fused", "foreach")   # how an optimiser steps, not what it computes


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
        if cfg.spectral_norm:
            torch.manual_seed(seed_for(cfg.seed, "spectral-norm"))   # its power iteration's start: a stream of its own
            spectral_normalise(D)
        lens = None
        if cfg.tempering == "lens":
            lens = init_net(make_lens(sample_shape, cfg.lens_width, cfg.lens_blocks), cfg.seed, "lens")
            if cfg.lens_zero_init:
                zero_last_layer(lens)
    return G, D, lens


def spectral_normalise(net: nn.Module) -> nn.Module:
    """Every convolution and linear layer of ``net`` spectrally normalised (Miyato et al. 2018), through
    PyTorch's parametrisation: its weight is divided by the estimate of its largest singular value, one
    power iteration per forward pass in training mode; the estimate's vectors are buffers, so they are
    checkpointed and resumed with the net."""
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(net.modules()):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            spectral_norm(module)
    return net


def make_augment(cfg: TrainConfig, device: torch.device, dist: Dist) -> DiffAugment | None:
    """The run's DiffAugment (``--diffaugment``), drawing from a stream of its own; None when off."""
    policy = parse_policy(cfg.diffaugment)
    return DiffAugment(policy, random_stream(cfg, "diffaugment", device, dist)) if policy else None


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
        return GaussianBlur(schedule, cfg.blur_sigma, both=cfg.blur_both)
    lens_opt = make_optimizer(dataclasses.replace(cfg, optimizer="adam", lr=cfg.lens_lr), lens.parameters(),
                              capturable=capturable)
    return Tempering(lens, schedule, cfg.loss, lens_opt, cfg.reconstruction,
                     before_update=lambda m: average_gradients(m, dist.world), autocast=autocast)


def lambda_schedule(cfg: TrainConfig) -> LambdaSchedule:
    """The run's λ(t): ``--schedule`` with its K and constant value."""
    return LambdaSchedule(cfg.schedule, cfg.k, cfg.lambda_value)


def exit_policy(cfg: TrainConfig) -> ExitPolicy:
    """How and when the run's tempering ends (``--lens-exit`` and its options), from its configuration."""
    return ExitPolicy(cfg.tempering, lambda_schedule(cfg), cfg.lens_exit, cfg.lens_exit_steps, cfg.lens_exit_tolerance,
                      cfg.lens_exit_patience, cfg.reconstruction, cfg.steps)
