"""Put a lens between the real data and *any* discriminator.

This is the whole method in one object; our own trainer uses it too, so there
is exactly one place where the lens is applied. In your training loop::

    tempering = Tempering(ImageLens(channels=3), LambdaSchedule("sine", k=10_000), "gan")
    for t, x in enumerate(loader, start=1):
        real = tempering.real(x)                 # L(X), as data for D's step
        ... your D step on real and G(z) ...
        ... your G step ...
        tempering.step(D, t)                     # one lens update, gradients through D

``real`` keeps the graph of L(X) so that the lens step reuses it instead of
running the lens forward a second time.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from .lens import LambdaSchedule
from .losses import OBJECTIVES, reconstruction


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Let gradients flow *through* ``module`` while it stays exactly as it is.

    Its parameters take no gradients, and its buffers (batch-norm running
    statistics) are restored afterwards: a G or lens step leaves D untouched.
    """
    flags = [p.requires_grad for p in module.parameters()]
    # Buffers are swapped for copies rather than restored in place afterwards:
    # the autograd graph may hold the tensors the forward pass used.
    originals = [(m, name, b) for m in module.modules() for name, b in m._buffers.items() if b is not None]
    for m, name, b in originals:
        m._buffers[name] = b.clone()
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
        for m, name, b in originals:
            m._buffers[name] = b


class Tempering:
    """A lens L, its optimiser and its loss ``λ(t)·L_L^A + L_L^R``.

    Args:
        lens: a module mapping a batch of real data to the same space.
        schedule: λ(t), e.g. ``LambdaSchedule("sine", k=10_000)``.
        objective: ``"gan"``, ``"lsgan"``, ``"wgan-gp"`` or a function of D's
            outputs on L(X) giving the lens's adversarial loss L_L^A.
        optimizer: defaults to Adam(lr=1e-4, betas=(0.5, 0.999)).
        reduction: ``"mean"`` (default) or ``"sum"`` for ‖X − L(X)‖².
        before_update: called with the lens between its backward pass and its
            optimiser step (our trainer averages gradients across processes there).
        autocast: a context-manager factory for the forward passes (mixed precision).
    """

    def __init__(self, lens: nn.Module, schedule: LambdaSchedule,
                 objective: str | Callable[[Tensor], Tensor] = "gan",
                 optimizer: torch.optim.Optimizer | None = None, reduction: str = "mean",
                 before_update: Callable[[nn.Module], None] | None = None,
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext):
        self.lens = lens
        self.schedule = schedule
        self.adversarial = OBJECTIVES[objective].lens_loss if isinstance(objective, str) else objective
        self.optimizer = optimizer or torch.optim.Adam(lens.parameters(), lr=1e-4, betas=(0.5, 0.999))
        self.reduction = reduction
        self.before_update = before_update
        self.autocast = autocast
        self._x: Tensor | None = None
        self._lensed: Tensor | None = None

    def real(self, x: Tensor, keep_graph: bool = True) -> Tensor:
        """L(x), detached: D's step treats it as data.

        With ``keep_graph`` the graph of L(x) is kept for the next :meth:`step`
        (the lens updates on the last batch that D saw).
        """
        if not keep_graph:
            with torch.no_grad(), self.autocast():
                return self.lens(x).to(x.dtype)
        with self.autocast():
            self._x, self._lensed = x, self.lens(x).to(x.dtype)
        return self._lensed.detach()

    def step(self, discriminator: nn.Module, t: int) -> dict[str, float | Tensor]:
        """One lens update at step ``t``; only L's parameters change."""
        return self.update(discriminator, self.schedule(t))

    def update(self, discriminator: nn.Module, lam: float | Tensor) -> dict[str, float | Tensor]:
        """One lens update with weight ``lam`` = λ(t), a number or a device
        scalar (a CUDA graph replays this with λ in a tensor it refills)."""
        if self._lensed is None:
            raise RuntimeError("call Tempering.real(x) before Tempering.step(D, t)")
        with frozen(discriminator), self.autocast():
            adversarial = self.adversarial(discriminator(self._lensed).float())
        rec = reconstruction(self._x, self._lensed, self.reduction)
        self.optimizer.zero_grad(set_to_none=True)
        (lam * adversarial + rec).backward()
        if self.before_update:
            self.before_update(self.lens)
        self.optimizer.step()
        self._x = self._lensed = None
        return {"lambda": lam, "loss_lens_adv": adversarial.detach(), "loss_lens_rec": rec.detach()}
