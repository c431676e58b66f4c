"""The lens L (paper Fig. 4) and the schedules of its adversarial weight λ(t).

The lens maps the data space to itself, ``L(x) = x + f(x)``: the global skip
from input to output makes the identity easy to reach (paper §3). For images
``f`` is the EnhanceNet-style residual network of Fig. 4; for 2-D points it is
the same idea with linear layers.
"""
from __future__ import annotations

import math

import torch
from torch import nn

SCHEDULES = ("sine", "linear", "constant")


def sine_lambda(t: float, k: float) -> float:
    """λ(t) = 1 − sin(tπ / 2K) for t ≤ K, else 0 (paper §2, Eq. 4)."""
    if t > k:
        return 0.0
    return 1.0 - math.sin(t * math.pi / (2.0 * k))


def linear_lambda(t: float, k: float) -> float:
    """λ(t) = 1 − t/K for t ≤ K, else 0: the linear fade of StyleGAN3's blur (``training/loss.py``)."""
    return max(0.0, 1.0 - t / k)


class LambdaSchedule:
    """λ as a function of the step; ``kind`` is one of :data:`SCHEDULES`: the paper's sine, a linear
    fade (both reach 0 at step K) or a constant.

    The schedule also owns the one rule for *whether step t is tempered*
    (:meth:`within`): the lens's adversarial term is on, and a fixed tempering
    still acts, exactly at the steps t ≤ K of a sine schedule (λ(K) = 0, so at K
    the term weighs nothing), and at every step of a constant one.
    """

    def __init__(self, kind: str = "sine", k: int = 10_000, value: float = 1.0):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown λ schedule {kind!r}; choose one of: {', '.join(SCHEDULES)} "
                             "(no tempering at all is tempering 'none', not a schedule)")
        if kind != "constant" and k <= 0:
            raise ValueError(f"K must be positive, got {k}")
        self.kind, self.k, self.value = kind, k, value

    def __call__(self, t: int) -> float:
        if self.kind == "sine":
            return sine_lambda(t, self.k)
        if self.kind == "linear":
            return linear_lambda(t, self.k)
        return self.value

    @property
    def end(self) -> int | None:
        """The last tempered step: K for the sine and linear schedules, None (never ends) for a constant one."""
        return None if self.kind == "constant" else self.k

    def within(self, t: int) -> bool:
        """Whether step ``t`` is tempered: t ≤ :attr:`end`."""
        return self.end is None or t <= self.end

    def __repr__(self) -> str:
        return f"LambdaSchedule({self.kind!r}, k={self.k}, value={self.value})"


class _ResidualBlock(nn.Module):
    """conv3×3 – BN – ReLU – conv3×3 – BN, plus the block skip (Fig. 4)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


class ImageLens(nn.Module):
    """The paper's lens for images: L(x) = x + f(x), all convolutions 3×3, stride 1.

    Args:
        channels: image channels (1 or 3).
        width: feature maps inside the lens (paper: 32).
        blocks: residual blocks (paper: 8).
    """

    def __init__(self, channels: int, width: int = 32, blocks: int = 8):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),   # (B, width, H, W)
            nn.ReLU(inplace=True),
            *[_ResidualBlock(width) for _ in range(blocks)],
            nn.Conv2d(width, channels, 3, padding=1),   # (B, channels, H, W)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class _LinearResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


class PointLens(nn.Module):
    """The same lens for vectors (the 2-D mixtures): L(x) = x + f(x), f an MLP
    of residual blocks. No batch norm: with two input dimensions it mostly adds
    noise to an already tiny network."""

    def __init__(self, dim: int = 2, width: int = 32, blocks: int = 8):
        super().__init__()
        self.f = nn.Sequential(
            nn.Linear(dim, width),
            nn.ReLU(inplace=True),
            *[_LinearResidualBlock(width) for _ in range(blocks)],
            nn.Linear(width, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


def make_lens(sample_shape: tuple, width: int = 32, blocks: int = 8) -> nn.Module:
    """The lens that fits one sample of shape ``(C, H, W)`` or ``(D,)``."""
    if len(sample_shape) == 3:
        return ImageLens(sample_shape[0], width, blocks)
    if len(sample_shape) == 1:
        return PointLens(sample_shape[0], width, blocks)
    raise ValueError(f"no lens for samples of shape {tuple(sample_shape)}")


def zero_last_layer(lens: nn.Module) -> None:
    """Make f's last layer output zeros, so that L(x) = x exactly at the start.

    An option (``--lens-zero-init``), off by default: the paper uses Xavier
    initialisation everywhere, which starts the lens far from the identity.
    """
    last = lens.f[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
