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

from tempered_gan.data.registry import IMAGE_SIDES

ARCHITECTURES = ("dcgan", "lsgan", "wgan-gp", "mlp")


def _norm2d(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()




def _extra_stages(side: int) -> int:
    """Stride-2 stages beyond the paper's three for images of ``side`` × ``side``."""
    if side not in IMAGE_SIDES:
        raise ValueError(f"the conv nets take {', '.join(map(str, IMAGE_SIDES))}-pixel square images, got {side}")
    return IMAGE_SIDES.index(side)


class ConvGenerator(nn.Module):
    """z → dense 4×4×(4C·2^s) → 3 + s stride-2 transposed convolutions, halving the channels
    down to C → ``side`` × ``side``, tanh. s = 0 at 32 px (the paper's nets), 1 at 64, 2 at 128."""

    def __init__(self, z_dim: int, channels: int, width: int, kernel: int = 4, batchnorm: bool = True,
                 side: int = 32):
        super().__init__()
        padding, out_pad = (kernel - 1) // 2, kernel % 2  # doubles H, W for kernel 4 or 5
        top = 4 * width * 2 ** _extra_stages(side)
        self.project = nn.Linear(z_dim, 4 * 4 * top)
        layers: list[nn.Module] = [_norm2d(top, batchnorm), nn.ReLU(True)]             # (B, top, 4, 4)
        c = top
        while c > width:                                                                # 8×8, 16×16, …
            layers += [nn.ConvTranspose2d(c, c // 2, kernel, 2, padding, out_pad), _norm2d(c // 2, batchnorm),
                       nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(width, channels, kernel, 2, padding, out_pad), nn.Tanh()]  # (B, channels, side, side)
        self.body = nn.Sequential(*layers)
        self.top = top

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(-1, self.top, 4, 4))


class ConvDiscriminator(nn.Module):
    """``side`` × ``side`` → 3 + s stride-2 convolutions, doubling the channels from C →
    dense → one score per sample (s as for :class:`ConvGenerator`).

    No normalisation on the first layer (Radford et al.)."""

    def __init__(self, channels: int, width: int, kernel: int = 4, batchnorm: bool = True, side: int = 32):
        super().__init__()
        padding = (kernel - 1) // 2
        layers: list[nn.Module] = [nn.Conv2d(channels, width, kernel, 2, padding), nn.LeakyReLU(0.2, True)]
        c = width
        for _ in range(2 + _extra_stages(side)):                                        # … down to 4×4
            layers += [nn.Conv2d(c, 2 * c, kernel, 2, padding), _norm2d(2 * c, batchnorm), nn.LeakyReLU(0.2, True)]
            c *= 2
        layers += [nn.Flatten(), nn.Linear(4 * 4 * c, 1)]
        self.body = nn.Sequential(*layers)

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
    if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2] or sample_shape[1] not in IMAGE_SIDES:
        raise ValueError(f"the {arch} nets need square images of side {', '.join(map(str, IMAGE_SIDES))}, "
                         f"got samples of shape {tuple(sample_shape)}")
    channels, side = sample_shape[0], sample_shape[1]
    if arch == "dcgan":
        return ConvGenerator(z_dim, channels, width, side=side), ConvDiscriminator(channels, width, side=side)
    if arch == "lsgan":
        return (ConvGenerator(z_dim, channels, width, batchnorm=False, side=side),
                ConvDiscriminator(channels, width, batchnorm=False, side=side))
    if arch == "wgan-gp":
        return (ConvGenerator(z_dim, channels, width, kernel=5, side=side),
                ConvDiscriminator(channels, width, kernel=5, batchnorm=False, side=side))
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
