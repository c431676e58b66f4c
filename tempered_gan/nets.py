"""The paper's generators and discriminators, parametrised rather than copied.

* ``dcgan``  — Fig. 3 after Radford et al.: 4×4 kernels, stride 2, batch norm,
  ReLU in G, leaky ReLU (0.2) in D, channel multiplier C.
* ``lsgan``  — the same nets without batch norm (paper §4).
* ``wgan-gp`` — Gulrajani et al.'s ``gan_cifar.py``: 5×5 kernels, DIM = C = 128,
  batch norm in G only, no batch norm in the critic.
* ``mlp``    — small MLPs for the 2-D mixtures.

D returns one raw score per sample, shape (B,): a logit for the original GAN
(the sigmoid lives in the loss), a score for LSGAN and WGAN-GP.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

ARCHITECTURES = ("dcgan", "lsgan", "wgan-gp", "mlp")


def _norm2d(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()


class ConvGenerator(nn.Module):
    """z → dense 4×4×4C → three stride-2 transposed convolutions → 32×32, tanh."""

    def __init__(self, z_dim: int, channels: int, width: int, kernel: int = 4, batchnorm: bool = True):
        super().__init__()
        padding, out_pad = (kernel - 1) // 2, kernel % 2  # doubles H, W for kernel 4 or 5
        c = width
        self.project = nn.Linear(z_dim, 4 * 4 * 4 * c)
        self.body = nn.Sequential(
            _norm2d(4 * c, batchnorm), nn.ReLU(True),                                    # (B, 4C, 4, 4)
            nn.ConvTranspose2d(4 * c, 2 * c, kernel, 2, padding, out_pad),
            _norm2d(2 * c, batchnorm), nn.ReLU(True),                                    # (B, 2C, 8, 8)
            nn.ConvTranspose2d(2 * c, c, kernel, 2, padding, out_pad),
            _norm2d(c, batchnorm), nn.ReLU(True),                                        # (B, C, 16, 16)
            nn.ConvTranspose2d(c, channels, kernel, 2, padding, out_pad),
            nn.Tanh(),                                                                   # (B, channels, 32, 32)
        )
        self.width = width

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(-1, 4 * self.width, 4, 4))


class ConvDiscriminator(nn.Module):
    """32×32 → three stride-2 convolutions → dense → one score per sample.

    No normalisation on the first layer (Radford et al.)."""

    def __init__(self, channels: int, width: int, kernel: int = 4, batchnorm: bool = True):
        super().__init__()
        padding = (kernel - 1) // 2
        c = width
        self.body = nn.Sequential(
            nn.Conv2d(channels, c, kernel, 2, padding), nn.LeakyReLU(0.2, True),               # (B, C, 16, 16)
            nn.Conv2d(c, 2 * c, kernel, 2, padding), _norm2d(2 * c, batchnorm), nn.LeakyReLU(0.2, True),  # (B, 2C, 8, 8)
            nn.Conv2d(2 * c, 4 * c, kernel, 2, padding), _norm2d(4 * c, batchnorm), nn.LeakyReLU(0.2, True),  # (B, 4C, 4, 4)
            nn.Flatten(),
            nn.Linear(4 * 4 * 4 * c, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).view(-1)


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, dim: int, width: int, depth: int = 3):
        super().__init__()
        layers, d = [], z_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU(True)]
            d = width
        self.body = nn.Sequential(*layers, nn.Linear(d, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class MLPDiscriminator(nn.Module):
    def __init__(self, dim: int, width: int, depth: int = 3):
        super().__init__()
        layers, d = [], dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.LeakyReLU(0.2, True)]
            d = width
        self.body = nn.Sequential(*layers, nn.Linear(d, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).view(-1)


def make_nets(arch: str, sample_shape: tuple, z_dim: int, width: int) -> tuple[nn.Module, nn.Module]:
    """(G, D) of architecture ``arch`` for samples of shape ``sample_shape``."""
    if arch == "mlp":
        if len(sample_shape) != 1:
            raise ValueError("the mlp nets are for vector data such as the 2-D mixtures")
        return MLPGenerator(z_dim, sample_shape[0], width), MLPDiscriminator(sample_shape[0], width)
    if len(sample_shape) != 3 or tuple(sample_shape[1:]) != (32, 32):
        raise ValueError(f"the {arch} nets need 32×32 images, got samples of shape {tuple(sample_shape)}")
    channels = sample_shape[0]
    if arch == "dcgan":
        return ConvGenerator(z_dim, channels, width), ConvDiscriminator(channels, width)
    if arch == "lsgan":
        return (ConvGenerator(z_dim, channels, width, batchnorm=False),
                ConvDiscriminator(channels, width, batchnorm=False))
    if arch == "wgan-gp":
        return (ConvGenerator(z_dim, channels, width, kernel=5),
                ConvDiscriminator(channels, width, kernel=5, batchnorm=False))
    raise ValueError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")


def xavier_init_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Xavier (Glorot) uniform weights and zero biases for every conv and linear
    layer, drawn from ``generator`` so that each network has its own stream."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode (batch norm uses its running statistics), then back
    in the mode it was in: drawing samples changes no state of a run."""
    mode = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(mode)
