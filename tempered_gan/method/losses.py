"""The three objectives of the paper (§2.1–2.3), as pure functions of D's
raw outputs (logits for the original GAN; scores for LSGAN and WGAN-GP).

Notation: ``real`` = D(L(X)), ``fake`` = D(G(Z)). Every term is a batch mean.
The original GAN terms use softplus, the stable form of the logs:
    −log σ(a) = softplus(−a),      −log(1 − σ(a)) = softplus(a).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# --- original GAN, non-saturating generator -------------------------------
def gan_d(real: Tensor, fake: Tensor) -> Tensor:
    """−log D(L(X)) − log(1 − D(G(Z)))."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def gan_g(fake: Tensor) -> Tensor:
    """−log D(G(Z))."""
    return F.softplus(-fake).mean()


def gan_lens(real: Tensor) -> Tensor:
    """−log(1 − D(L(X))): the lens makes lensed data look fake."""
    return F.softplus(real).mean()


# --- LSGAN -----------------------------------------------------------------
def lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    """‖D(G(Z))‖² + ‖D(L(X)) − 1‖²."""
    return fake.pow(2).mean() + (real - 1).pow(2).mean()


def lsgan_g(fake: Tensor) -> Tensor:
    """‖D(G(Z)) − 1‖²."""
    return (fake - 1).pow(2).mean()


def lsgan_lens(real: Tensor) -> Tensor:
    """‖D(L(X))‖²."""
    return real.pow(2).mean()


# --- WGAN-GP ----------------------------------------------------------------
def wgan_d(real: Tensor, fake: Tensor) -> Tensor:
    """D(G(Z)) − D(L(X)); the gradient penalty is added by :func:`discriminator_loss`."""
    return fake.mean() - real.mean()


def wgan_g(fake: Tensor) -> Tensor:
    """−D(G(Z))."""
    return -fake.mean()


def wgan_lens(real: Tensor) -> Tensor:
    """D(L(X))."""
    return real.mean()


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
    """E[(‖∇D(x̂)‖₂ − 1)²] at x̂ = α·real + (1 − α)·fake (Gulrajani et al.).

    ``real`` is L(X), never X. ``alpha`` has one entry per sample, drawn by the
    caller so that it controls the random stream. Uses ``torch.autograd.grad``
    so that nothing is accumulated into ``.grad`` fields.
    """
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def r1_penalty(real: Tensor, real_scores: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E‖∇ₓD(x)‖² at D's real input (X for the r1 arm; L(X) when
    a run combines it with a lens),
    from the scores D gave ``real``, which must require grad. The caller weights it by γ/2.
    Uses ``torch.autograd.grad`` with a graph, so D's update descends the penalty too."""
    (grad,) = torch.autograd.grad(real_scores.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def reconstruction(x: Tensor, lensed: Tensor, reduction: str = "mean") -> Tensor:
    """L_L^R = ‖X − L(X)‖².

    ``mean``: mean over all elements (the project's default; docs/DECISIONS.md explains why).
    ``sum``: squared norm per sample, averaged over the batch.
    """
    diff = (x - lensed).pow(2)
    if reduction == "mean":
        return diff.mean()
    if reduction == "sum":
        return diff.flatten(1).sum(1).mean()
    raise ValueError(f"unknown reconstruction reduction {reduction!r}; choose 'mean' or 'sum'")


@dataclass(frozen=True)
class Objective:
    """One GAN variant: its D, G and lens-adversarial terms and how D is trained."""

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    lens_loss: Callable[[Tensor], Tensor]
    critic_steps: int = 1          # D updates per G update
    gp_weight: float = 0.0         # gradient-penalty weight (0: none)


OBJECTIVES = {
    "gan": Objective("gan", gan_d, gan_g, gan_lens),
    "lsgan": Objective("lsgan", lsgan_d, lsgan_g, lsgan_lens),
    "wgan-gp": Objective("wgan-gp", wgan_d, wgan_g, wgan_lens, critic_steps=5, gp_weight=10.0),
}


def discriminator_loss(objective: Objective, critic: nn.Module, real: Tensor, fake: Tensor, gp_weight: float = 0.0,
                       generator: torch.Generator | None = None, r1_gamma: float = 0.0) -> Tensor:
    """D's loss on its real input L(X) (data: no gradient into L) and G(Z), plus
    ``gp_weight`` × :func:`gradient_penalty` (WGAN-GP: 10) at interpolates
    between L(X) and G(Z) whose weights are drawn from ``generator``, plus
    ``r1_gamma``/2 × :func:`r1_penalty` at the real input (the ``r1`` arm: X itself)."""
    if r1_gamma:
        real = real.detach().requires_grad_(True)
    real_scores = critic(real)
    loss = objective.d_loss(real_scores.float(), critic(fake).float())
    if r1_gamma:
        loss = loss + r1_gamma / 2 * r1_penalty(real, real_scores).float()
    if gp_weight:
        alpha = torch.rand(real.shape[0], generator=generator, device=real.device)
        loss = loss + gp_weight * gradient_penalty(critic, real, fake, alpha).float()
    return loss
