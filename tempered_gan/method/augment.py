"""DiffAugment (Zhao et al., NeurIPS 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): the same kind of random, differentiable transformation of both of D's inputs, the real
and the generated, in D's step and in G's, so that D never sees unaugmented data and G is trained
through the augmentation. Written from the paper's definitions (§3, images in [-1, 1]):

* ``color``: brightness x + (r − 0.5); saturation (x − μ_c)·2r + μ_c with μ_c the mean over channels;
  contrast (x − μ)·(r + 0.5) + μ with μ the image's mean; each r ~ U(0, 1) per image;
* ``translation``: a shift of up to 1/8 of the image's side in each direction, whole pixels, the
  uncovered border filled with zeros;
* ``cutout``: a square of half the image's side, at a random place, set to zero.

Every draw comes from the generator given (a stream of its own in a run), so adding the augmentation
changes no other draw. Each call draws anew: the real and the generated batch get the same policy,
with parameters drawn independently per image, as in the paper.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(text: str | None) -> tuple[str, ...]:
    """``"color,translation"`` (or ``color/translation``, as an arm's option writes it: ``--arms`` splits on
    commas) → ("color", "translation"); empty or None → () (off). ValueError on an unknown one."""
    parts = tuple(p.strip() for p in (text or "").replace("/", ",").split(",") if p.strip())
    unknown = [p for p in parts if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {', '.join(unknown)}; choose from: {', '.join(POLICIES)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"DiffAugment policy {text!r} names an operation twice")
    return parts


class DiffAugment:
    """``augment(x)``: images ``(B, C, H, W)`` through the policy's operations, in the order given."""

    def __init__(self, policy: tuple[str, ...], generator: torch.Generator | None = None):
        self.policy = tuple(policy)
        self.generator = generator

    @property
    def generators(self) -> list[torch.Generator]:
        return [self.generator] if self.generator is not None else []

    def _uniform(self, shape, x: Tensor) -> Tensor:
        """U(0, 1) draws in float32 on ``x``'s device, whatever ``x``'s dtype (bf16 would round them)."""
        device = self.generator.device if self.generator is not None else x.device
        return torch.rand(shape, generator=self.generator, device=device).to(x.device)

    def _integers(self, high: int, low: int, shape, x: Tensor) -> Tensor:
        """Whole numbers in [low, high) per image (``high`` exclusive), from the generator."""
        return (low + (self._uniform(shape, x) * (high - low)).floor()).long()

    def __call__(self, x: Tensor) -> Tensor:
        for op in self.policy:
            x = getattr(self, op)(x)
        return x

    def color(self, x: Tensor) -> Tensor:
        b, dtype = x.shape[0], x.dtype
        x = x + (self._uniform((b, 1, 1, 1), x) - 0.5).to(dtype)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (self._uniform((b, 1, 1, 1), x) * 2).to(dtype) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (self._uniform((b, 1, 1, 1), x) + 0.5).to(dtype) + mean

    def translation(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        sh, sw = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
        dy = self._integers(sh + 1, -sh, (b, 1, 1), x)
        dx = self._integers(sw + 1, -sw, (b, 1, 1), x)
        rows = torch.arange(h, device=x.device).view(1, h, 1) - dy       # the source row of each output row
        cols = torch.arange(w, device=x.device).view(1, 1, w) - dx
        inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)
        rows, cols = rows.clamp(0, h - 1).expand(b, h, w), cols.clamp(0, w - 1).expand(b, h, w)
        flat = (rows * w + cols).view(b, 1, h * w).expand(-1, x.shape[1], -1)
        moved = x.reshape(b, x.shape[1], h * w).gather(2, flat).view_as(x)
        return moved * inside.to(x.dtype)

    def cutout(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
        top = self._integers(h + (1 - ch % 2), 0, (b, 1, 1), x) - ch // 2     # the square's first row, may start outside
        left = self._integers(w + (1 - cw % 2), 0, (b, 1, 1), x) - cw // 2
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
        return x * (~inside).unsqueeze(1).to(x.dtype)


class AugmentedDiscriminator(nn.Module):
    """D seen through the augmentation: ``D(augment(x))``, with D's parameters and buffers. The lens's
    update asks this D whether L(X) looks real, as D itself is only ever shown augmented inputs."""

    def __init__(self, discriminator: nn.Module, augment: DiffAugment):
        super().__init__()
        self.discriminator = discriminator
        self.augment = augment

    def forward(self, x: Tensor) -> Tensor:
        return self.discriminator(self.augment(x))
