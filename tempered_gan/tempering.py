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


def blend_alpha(t: int, k: int, steps: int) -> float:
    """α(t) of the blend exit: 1 up to K, then 1 − (t − K)/M for K < t < K + M,
    and 0 from K + M on (the lens is gone by then)."""
    if t <= k:
        return 1.0
    return max(0.0, 1.0 - (t - k) / steps)


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
        """One lens update at step ``t``; only L's parameters change. Where
        λ(t) = 0 the adversarial term weighs nothing, so D's pass is skipped."""
        lam = self.schedule(t)
        return self.update(discriminator, lam, adversarial=lam != 0)

    def update(self, discriminator: nn.Module, lam: float | Tensor,
               adversarial: bool = True) -> dict[str, float | Tensor]:
        """One lens update of ``λ·L_L^A + L_L^R`` with ``lam`` = λ(t), a number
        or a device scalar (a CUDA graph replays this with λ in a tensor it
        refills). ``adversarial=False``: ``L_L^R`` alone (λ = 0), no pass of D;
        the adversarial loss is then returned as None."""
        if self._lensed is None:
            raise RuntimeError("call Tempering.real(x) before Tempering.step(D, t)")
        rec = reconstruction(self._x, self._lensed, self.reduction)
        loss, adv = rec, None
        if adversarial:
            with frozen(discriminator), self.autocast():
                adv = self.adversarial(discriminator(self._lensed).float())
            loss = lam * adv + rec
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.before_update:
            self.before_update(self.lens)
        self.optimizer.step()
        self._x = self._lensed = None
        return {"lambda": lam, "loss_lens_adv": adv.detach() if adv is not None else None,
                "loss_lens_rec": rec.detach()}

    @torch.no_grad()
    def blend(self, x: Tensor, alpha: float | Tensor) -> Tensor:
        """``L_α(x) = x + α·(L(x) − x)``: the lens faded towards the identity
        (α = 1: L itself; α = 0: x). The ``blend`` exit shows D this while α
        falls from 1 to 0 after K; the lens no longer trains."""
        with self.autocast():
            lensed = self.lens(x).to(x.dtype)
        return x + alpha * (lensed - x)
