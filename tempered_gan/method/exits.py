"""When the tempering leaves, and what each iteration does with it: the :class:`ExitPolicy`.

The λ schedule decides *whether step t is tempered* (:meth:`LambdaSchedule.within
<tempered_gan.method.lens.LambdaSchedule.within>`: t ≤ K for the sine schedule, always for a
constant one). After K, ``--lens-exit`` decides what happens (docs/DECISIONS.md,
"How the lens exits after K"):

* ``drop``: the tempering is dropped right after step K;
* ``blend``: L_α(x) = x + α(t)·(L(x) − x), α falling linearly from 1 to 0 over
  M = ``--lens-exit-steps`` steps, then dropped after step K + M − 1;
* ``converge`` (the paper's wording): L trains on ‖X − L(X)‖² alone until it stays
  within ``--lens-exit-tolerance`` for ``--lens-exit-patience`` steps, then is dropped;
* ``keep``: never dropped (trained on ‖X − L(X)‖² alone after K).

The fixed temperings (noise, blur) have nothing to fade or keep: they end at K
(``drop``). A constant schedule never ends. Every exit is the same run up to step K.

The policy is built once from the configuration (:func:`tempered_gan.training.factories.exit_policy`).
For each step it gives a :class:`Phase`, which says how D's real input is made and
how the tempering is updated; the trainer applies the phase to whatever tempering
it holds (:class:`~tempered_gan.method.tempering.NoTempering` once it has exited, or without
one) and never branches on the exit itself. The policy also owns the one rule for
*has it exited* (:meth:`ExitPolicy.exits_after`), and the run's last line asks it how
the tempering exited.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from tempered_gan.method.lens import LambdaSchedule
from tempered_gan.method.losses import reconstruction

# The converge rule is decided every min(EXIT_CHECK_EVERY, --lens-exit-patience) steps, counted from step 0,
# whatever the logging, sampling, evaluation and checkpoint intervals (they must never change what is trained),
# and without a host-device synchronisation at every step: the counter lives on the device and is read only then.
EXIT_CHECK_EVERY = 100


def blend_alpha(t: int, k: int, steps: int) -> float:
    """α(t) of the blend exit: 1 up to K, then 1 − (t − K)/M for K < t < K + M,
    and 0 from K + M on (the lens is gone by then)."""
    if t <= k:
        return 1.0
    return max(0.0, 1.0 - (t - k) / steps)


# --- phases: what one iteration does with the tempering (one CUDA graph each) --------------------------
@dataclass(frozen=True)
class Phase:
    """D's real input is ``tempering.real(x)`` and the tempering updates once, with
    its adversarial term or without. The base phase serves plain training (the
    tempering is then :class:`~tempered_gan.method.tempering.NoTempering`) and the tempered
    steps t ≤ K. Phases are hashable: a CUDA graph is captured per phase."""

    name: str = "tempered"
    adversarial: bool = True

    def real(self, tempering, x: Tensor, keep_graph: bool, lam: float | Tensor, alpha: float | Tensor) -> Tensor:
        """D's real input for batch ``x`` (``keep_graph``: the batch the update reuses)."""
        return tempering.real(x, keep_graph=keep_graph, lam=lam)

    def update(self, tempering, discriminator: nn.Module, lam: float | Tensor, x: Tensor, real: Tensor,
               counter: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The tempering's update after G's step, on the last batch ``x`` and D's real
        input ``real`` for it; returns (adversarial loss, ‖X − T(X)‖²), None where
        not computed. ``counter``: the converge rule's count of steps within tolerance."""
        out = tempering.update(discriminator, lam, adversarial=self.adversarial)
        return out["loss_lens_adv"], out["loss_lens_rec"]


PLAIN = Phase("plain", adversarial=False)
TEMPERED = Phase("tempered")


@dataclass(frozen=True)
class Reconstructing(Phase):
    """After K, exits converge and keep: the lens trains on ‖X − L(X)‖² alone (no
    pass of D). With a ``tolerance`` (converge), each step counts towards leaving
    while ‖X − L(X)‖² < tolerance, and a step above it resets the count."""

    name: str = "reconstructing"
    adversarial: bool = False
    tolerance: float | None = None

    def update(self, tempering, discriminator, lam, x, real, counter):
        adv, rec = super().update(tempering, discriminator, lam, x, real, counter)
        if self.tolerance is not None:   # on the device: read only when the rule is decided
            counter.copy_(torch.where(rec < self.tolerance, counter + 1, 0))
        return adv, rec


@dataclass(frozen=True)
class Fading(Phase):
    """After K, exit blend: D sees L_α(X) = X + α(t)·(L(X) − X); nothing is trained,
    and ‖X − L_α(X)‖² (with the run's ``reduction``) is logged: how far D's view
    of the data still is from X."""

    name: str = "fading"
    adversarial: bool = False
    reduction: str = "mean"

    def real(self, tempering, x, keep_graph, lam, alpha):
        return tempering.blend(x, alpha)

    def update(self, tempering, discriminator, lam, x, real, counter):
        return None, reconstruction(x, real, self.reduction)


# --- the policy ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExitPolicy:
    """A run's tempering over time, from its configuration: which :class:`Phase`
    each step runs, α(t), and when the tempering leaves."""

    kind: str                 # none | lens | noise | blur
    schedule: LambdaSchedule
    exit: str                 # drop | blend | converge | keep
    blend_steps: int          # M of the blend exit
    tolerance: float          # the converge rule: ‖X − L(X)‖² below this ...
    patience: int             # ... for this many consecutive steps
    reduction: str            # of ‖X − L(X)‖²
    steps: int                # the run's length (for its last line)

    @property
    def k(self) -> int | None:
        return self.schedule.end

    def phase(self, t: int, tempered: bool) -> Phase:
        """What iteration ``t`` does with the tempering; ``tempered``: whether the run
        still has one (False without one, or after it left)."""
        if not tempered:
            return PLAIN
        if self.schedule.within(t):
            return TEMPERED
        if self.exit == "blend":
            return Fading(reduction=self.reduction)
        return Reconstructing(tolerance=self.tolerance if self.exit == "converge" else None)

    def alpha(self, t: int) -> float:
        """The blend exit's α(t) (1 for every other exit)."""
        return blend_alpha(t, self.k, self.blend_steps) if self.exit == "blend" and self.k is not None else 1.0

    @property
    def exit_step(self) -> int | None:
        """The last step that uses the tempering under a bounded exit (None: no bound)."""
        if self.kind == "none" or self.k is None or self.exit not in ("drop", "blend"):
            return None
        return self.k if self.exit == "drop" else self.k + self.blend_steps - 1

    def may_exit(self, t: int) -> bool:
        """Whether the converge rule applies at step ``t``: past K with that exit."""
        return self.kind != "none" and self.exit == "converge" and not self.schedule.within(t)

    def exit_check_due(self, t: int) -> bool:
        """Whether the converge rule is decided after step ``t`` (see EXIT_CHECK_EVERY)."""
        return t % min(EXIT_CHECK_EVERY, self.patience) == 0

    def exits_after(self, t: int, steps_within_tolerance: Callable[[], int]) -> bool:
        """The one rule for *the tempering leaves after step t*: its bounded exit ends
        at t, or the converge rule is due and met. ``steps_within_tolerance`` reads the
        device counter (all processes agreeing); it is called only when due."""
        if t == self.exit_step:
            return True
        return (self.may_exit(t) and self.exit_check_due(t)
                and steps_within_tolerance() >= self.patience)

    @property
    def message(self) -> str:
        """How the tempering left, for the line printed at that step."""
        if self.kind != "lens":
            return f"{self.kind} tempering ended at K = {self.k} (σ = 0)"
        if self.exit == "converge":
            return (f"lens exited (‖X − L(X)‖² < {self.tolerance:g} for {self.patience} steps, "
                    "--lens-exit converge)")
        if self.exit == "blend":
            return f"lens gone (faded out over {self.blend_steps} steps after K = {self.k}, --lens-exit blend)"
        return f"lens dropped at K = {self.k} (--lens-exit drop)"

    def summary(self, exited_at: int | None) -> str:
        """Where the tempering stands at the end of a run that it exited after step
        ``exited_at`` (None: it has not left), for the run's last line."""
        if self.kind == "none":
            return "no tempering"
        if exited_at is not None:
            return f"{self.kind} exited after step {exited_at}"
        if self.k is None:
            return f"{self.kind} on throughout (--schedule constant, λ = {self.schedule.value:g})"
        if self.exit == "keep":
            return f"{self.kind} kept to the end (--lens-exit keep)"
        if self.steps <= self.k:
            return f"{self.kind} still on (λ reaches 0 at K = {self.k})"
        return f"{self.kind} still on (--lens-exit {self.exit}: not yet exited)"
