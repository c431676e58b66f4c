"""When the tempering leaves, as plain functions of the configuration and the step t.

A sine schedule reaches λ = 0 at step K; what happens then is ``--lens-exit``
(docs/DECISIONS.md, "How the lens leaves after K"):

* ``drop``: the tempering is dropped right after step K;
* ``blend``: L_α(x) = x + α(t)·(L(x) − x), α falling linearly from 1 to 0 over
  M = ``--lens-exit-steps`` steps, then dropped after step K + M − 1;
* ``converge`` (the paper's wording): L trains on ‖X − L(X)‖² alone until it stays
  within ``--retire-tolerance`` for ``--retire-patience`` steps, then is dropped;
* ``keep``: never dropped (trained on ‖X − L(X)‖² alone after K).

The fixed temperings (noise, blur) have nothing to fade or keep: they end at K
(``drop``). A constant schedule never ends. Every exit is the same run up to step K.
The trainer, the loop, the loss log and the run's last line all ask this module.
"""
from __future__ import annotations

from .config import TrainConfig

# The converge rule is decided every min(RETIRE_CHECK_EVERY, --retire-patience) steps, counted from step 0,
# whatever the logging, sampling, evaluation and checkpoint intervals (they must never change what is trained),
# and without a host-device synchronisation at every step: the counter lives on the device and is read only then.
RETIRE_CHECK_EVERY = 100


def blend_alpha(t: int, k: int, steps: int) -> float:
    """α(t) of the blend exit: 1 up to K, then 1 − (t − K)/M for K < t < K + M,
    and 0 from K + M on (the lens is gone by then)."""
    if t <= k:
        return 1.0
    return max(0.0, 1.0 - (t - k) / steps)


def alpha(cfg: TrainConfig, t: int) -> float:
    """The blend exit's α(t) (1 for every other exit)."""
    return blend_alpha(t, cfg.k, cfg.lens_exit_steps) if cfg.lens_exit == "blend" else 1.0


def phase(cfg: TrainConfig, t: int, tempered: bool) -> tuple:
    """What iteration ``t`` does with the tempering (one CUDA graph each):
    ``lens`` (tempered at λ(t); the learned lens trains with weight λ),
    ``converge`` (after K: trained on ‖X − L(X)‖² alone, and whether the
    retirement rule counts), ``blend`` (after K: frozen, faded out by α(t))
    or ``plain`` (no tempering: ``tempered`` is False). The fixed kinds end at
    K (drop), so they only ever run ``lens``."""
    if not tempered:
        return ("plain",)
    if cfg.lens != "sine" or t <= cfg.k:
        return ("lens",)
    if cfg.lens_exit == "blend":
        return ("blend",)
    return ("converge", cfg.lens_exit == "converge")


def exit_step(cfg: TrainConfig) -> int | None:
    """The last step that uses the tempering under a bounded exit (None: no bound)."""
    if cfg.lens != "sine" or cfg.lens_exit not in ("drop", "blend"):
        return None
    return cfg.k if cfg.lens_exit == "drop" else cfg.k + cfg.lens_exit_steps - 1


def may_retire(cfg: TrainConfig, t: int) -> bool:
    """Whether the converge rule applies at step ``t``: a sine lens past K with that exit."""
    return cfg.lens == "sine" and cfg.lens_exit == "converge" and t > cfg.k


def retire_check_due(cfg: TrainConfig, t: int) -> bool:
    """Whether the converge rule is decided after step ``t`` (see RETIRE_CHECK_EVERY)."""
    return t % min(RETIRE_CHECK_EVERY, cfg.retire_patience) == 0


def lens_loss_steps(cfg: TrainConfig, retired_at: int | None, last_step: int, t: int) -> tuple[int, int]:
    """Of steps last_step + 1 … t, up to which one the lens's adversarial loss and
    ‖X − T(X)‖² were computed (``last_step``: by none). The adversarial term exists
    only for the learned lens and stops at K (λ = 0); the reconstruction stops
    when the tempering leaves."""
    if cfg.lens == "none":                     # a run without a tempering
        lens_until = last_step
    else:
        lens_until = t if retired_at is None else min(t, retired_at)
    if cfg.tempering != "lens":                # only the learned lens has an adversarial loss
        adv_until = last_step
    else:
        adv_until = lens_until if cfg.lens != "sine" else min(lens_until, cfg.k)
    return adv_until, lens_until


def exit_message(cfg: TrainConfig) -> str:
    """How the tempering left, for the line printed at that step."""
    if cfg.tempering != "lens":
        return f"{cfg.tempering} tempering ended at K = {cfg.k} (σ = 0)"
    if cfg.lens_exit == "converge":
        return (f"lens retired (‖X − L(X)‖² < {cfg.retire_tolerance:g} for {cfg.retire_patience} steps, "
                "--lens-exit converge)")
    if cfg.lens_exit == "blend":
        return f"lens gone (faded out over {cfg.lens_exit_steps} steps after K = {cfg.k}, --lens-exit blend)"
    return f"lens dropped at K = {cfg.k} (--lens-exit drop)"


def exit_summary(cfg: TrainConfig, left_at: int | None) -> str:
    """Where the tempering stands at the end of a run that it left after step
    ``left_at`` (None: it has not left), for the run's last line."""
    if cfg.lens == "none":
        return "no lens"
    name = cfg.tempering   # lens, noise or blur
    if left_at is not None:
        return f"{name} left after step {left_at}"
    if cfg.lens == "constant":
        return f"{name} on throughout (--lens constant, λ = {cfg.lambda_value:g})"
    if cfg.lens_exit == "keep":
        return f"{name} kept to the end (--lens-exit keep)"
    if cfg.steps <= cfg.k:
        return f"{name} still on (λ reaches 0 at K = {cfg.k})"
    return f"{name} still on (--lens-exit {cfg.lens_exit}: not yet left)"
