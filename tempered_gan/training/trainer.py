"""One TAN iteration: the :class:`Trainer` holds a run's nets, optimisers, streams and tempering.

Iteration t (paper §2.1–2.4):
  1. ``critic_steps`` D updates on {L(X) as data, G(Z)} (+ gradient penalty on
     interpolates between L(X) and G(Z) for WGAN-GP; :func:`~tempered_gan.method.losses.discriminator_loss`);
  2. one G update, gradients through a frozen D;
  3. one lens update with weight λ(t), gradients through a frozen D, on the last
     real batch D saw, reusing the L(X) computed for D's step.

What tempers the real data (``--tempering``) is one object, ``Trainer.tempering``
(:mod:`tempered_gan.method.tempering`): the learned lens, instance noise or a blur. The
iteration asks it for D's real input (``real``) and D's generated input
(``fake``) and lets it update once (``update``, nothing for the fixed kinds); it
never asks which kind it is. Without a tempering, and once it has left, it is
:class:`~tempered_gan.method.tempering.NoTempering` (D sees X). What each step does with
it (tempered, trained on ‖X − L(X)‖² alone, faded out) and when it leaves is the
run's :class:`~tempered_gan.method.exits.ExitPolicy`; the iteration applies the step's
phase and never branches on it.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from tempered_gan.config.train_config import TrainConfig
from tempered_gan.data.loaders import Data
from tempered_gan.errors import UserError
from tempered_gan.method.augment import AugmentedDiscriminator, DiffAugment
from tempered_gan.method.exits import ExitPolicy, Phase
from tempered_gan.method.losses import OBJECTIVES, discriminator_loss
from tempered_gan.method.nets import eval_mode
from tempered_gan.method.tempering import BaseTempering, NoTempering, frozen
from tempered_gan.training.cuda_graphs import make_runner, uses_cuda_graphs
from tempered_gan.training.device import autocast_for, memory_format_for
from tempered_gan.training.factories import (
    build_nets,
    exit_policy,
    load_optimizer_state,
    make_augment,
    make_optimizer,
    make_tempering,
)
from tempered_gan.training.randomness import EpochSampler, random_stream, seed_for
from tempered_gan.training.scalars import LoggedScalars, stacked
from tempered_gan.util.distributed import SINGLE_PROCESS, Dist, average_gradients, fingerprint, gather

# The losses a step reports, by name (a term not computed at a step is left out of it, and logged as null).
LOSSES = ("loss_d", "loss_g", "loss_lens_adv", "loss_lens_rec")


@dataclass
class Trainer:
    """Everything one run holds; :meth:`step` is one TAN iteration."""

    cfg: TrainConfig
    data: Data
    device: torch.device
    G: nn.Module
    D: nn.Module
    tempering: BaseTempering                      # what tempers the real data (NoTempering: none, or it left)
    exits: ExitPolicy                             # what each step does with it, and when it leaves
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sampler: EpochSampler
    noise: torch.Generator
    penalty_noise: torch.Generator
    dist: Dist = SINGLE_PROCESS
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    memory_format: torch.memory_format = torch.preserve_format
    step_count: int = 0
    exited_at: int | None = None                    # the step after which the tempering left (None: it has not)
    below_tolerance: torch.Tensor | None = None   # consecutive steps with ‖X − L(X)‖² < tolerance, after K
    logged: LoggedScalars | None = None           # the steps' named scalars since the last log step (device)
    first_bad: torch.Tensor | None = None         # first step with a NaN/Inf loss, -1 if none (device)
    last_lambda: float | None = None              # λ(t) of the last step (None: no tempering)
    runner: object = None                         # how iterations run: eager or CUDA graphs
    G_ema: nn.Module | None = None                # --g-ema: the moving average of G that eval and sample use
    augment: DiffAugment | None = None            # --diffaugment: both of D's inputs, after the tempering

    @classmethod
    def create(cls, cfg: TrainConfig, data: Data, device: torch.device, dist: Dist = SINGLE_PROCESS) -> "Trainer":
        G, D, lens = build_nets(cfg, tuple(data.shape))
        memory = memory_format_for(cfg, data)
        G, D = G.to(device, memory_format=memory), D.to(device, memory_format=memory)
        graphs = uses_cuda_graphs(cfg, device, dist)
        if graphs:
            data = data.to(device)                   # batches are gathered on the GPU
            torch.backends.cudnn.benchmark = True    # fixed shapes: pick the fastest kernels once
        autocast = autocast_for(cfg, device, graphs)
        if lens is not None:
            lens = lens.to(device, memory_format=memory)
        tempering = make_tempering(cfg, lens, device, dist, autocast, capturable=graphs)
        trainer = cls(cfg, data, device, G, D, tempering, exit_policy(cfg),
                      make_optimizer(cfg, G.parameters(), capturable=graphs),
                      make_optimizer(cfg, D.parameters(), capturable=graphs),
                      EpochSampler(len(data), cfg.batch_size, cfg.seed, dist.rank, dist.world),
                      random_stream(cfg, "noise", device, dist), random_stream(cfg, "penalty", device, dist),
                      dist=dist, autocast=autocast, memory_format=memory,
                      below_tolerance=torch.zeros((), dtype=torch.long, device=device),
                      logged=LoggedScalars(device, LOSSES),
                      first_bad=torch.full((), -1, dtype=torch.long, device=device))
        if cfg.g_ema:
            trainer.G_ema = copy.deepcopy(G).requires_grad_(False)
        trainer.augment = make_augment(cfg, device, dist)
        trainer.runner = make_runner(trainer)
        return trainer

    @property
    def lens(self) -> nn.Module | None:
        return self.tempering.lens

    @property
    def generators(self) -> list[torch.Generator]:
        """Every generator an iteration draws from (CUDA graphs register them all)."""
        return [self.noise, self.penalty_noise, *self.tempering.generators,
                *(self.augment.generators if self.augment else [])]

    def _seen(self, x: torch.Tensor) -> torch.Tensor:
        """What D is shown of one of its inputs: the input itself, or augmented (``--diffaugment``)."""
        return self.augment(x) if self.augment is not None else x

    @property
    def critic(self) -> nn.Module:
        """D as the lens's update asks it: through the augmentation when there is one."""
        return AugmentedDiscriminator(self.D, self.augment) if self.augment is not None else self.D

    def _z(self) -> torch.Tensor:
        return torch.randn(self.cfg.batch_size, self.cfg.z_dim, generator=self.noise, device=self.device)

    def step(self) -> torch.Tensor:
        """Run iteration ``step_count + 1``; return its losses (d, g, lens_adv, lens_rec).

        The host draws the step's batch indices, λ(t) and the exit's α(t), and
        decides the phase; :meth:`iteration` does the device work, run op by op
        or replayed as a CUDA graph (``runner``). The returned tensor is
        overwritten by the next step: copy it to keep it.
        """
        t = self.step_count + 1
        idx = torch.stack([self.sampler.next() for _ in range(self.cfg.critic_steps)])
        self.last_lambda = self.lam(t)   # logged with step t even when the tempering leaves after it
        losses = self.runner.run(self.phase(t), t, idx, self.last_lambda or 0.0, self.exits.alpha(t))
        self.step_count = t
        if self.tempering.tempers and self.exits.exits_after(t, self._steps_within_tolerance):
            self.exit_tempering()
        return losses

    def phase(self, t: int) -> Phase:
        """What iteration ``t`` does with the tempering (:meth:`ExitPolicy.phase`)."""
        return self.exits.phase(t, self.tempering.tempers)

    def iteration(self, phase: Phase, idx: torch.Tensor, lam: float | torch.Tensor, alpha: float | torch.Tensor,
                  t: int | torch.Tensor) -> torch.Tensor:
        """The device work of one TAN iteration in ``phase`` (decided on the
        host): ``idx`` (critic_steps, B) batch indices, λ(t), α(t) and t, as
        numbers (eager) or device tensors (CUDA graph). Returns the step's losses by name
        (``loss_d``, ``loss_g`` and, when computed, ``loss_lens_adv`` and ``loss_lens_rec``),
        on the device.

        Everything else it changes is changed in place (weights, optimiser states,
        ``logged``, ``first_bad``, ``below_tolerance``), and nothing in it
        waits for the device, so it can be captured and replayed as it is.
        """
        cfg, objective, tempering = self.cfg, OBJECTIVES[self.cfg.loss], self.tempering
        for i in range(cfg.critic_steps):
            x = self.data.batch(idx[i]).to(self.device, non_blocking=True, memory_format=self.memory_format)
            real = phase.real(tempering, x, i == cfg.critic_steps - 1, lam, alpha)
            with torch.no_grad(), self.autocast():
                fake = tempering.fake(self.G(self._z()).float(), lam)
            with self.autocast():
                loss_d = discriminator_loss(objective, self.D, self._seen(real), self._seen(fake), cfg.gp_weight,
                                            self.penalty_noise, r1_gamma=cfg.r1_gamma)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            average_gradients(self.D, self.dist.world)
            self.opt_d.step()

        with frozen(self.D), self.autocast():
            loss_g = objective.g_loss(self.D(self._seen(tempering.fake(self.G(self._z()), lam))).float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        average_gradients(self.G, self.dist.world)
        self.opt_g.step()
        if self.G_ema is not None:
            self._average_g()

        lens_adv, lens_rec = phase.update(tempering, self.critic, lam, x, real, self.below_tolerance)
        losses = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}   # a term not computed here: not reported
        if lens_adv is not None:
            losses["loss_lens_adv"] = lens_adv
        if lens_rec is not None:
            losses["loss_lens_rec"] = lens_rec
        # Bookkeeping on the device, read only at log steps: no sync per step.
        bad = ~torch.isfinite(stacked(losses)).all()
        self.first_bad.copy_(torch.where((self.first_bad < 0) & bad, t, self.first_bad))
        self.logged.add(losses)
        return losses

    @torch.no_grad()
    def _average_g(self) -> None:
        """G_ema ← decay·G_ema + (1 − decay)·G for every weight; buffers (batch-norm statistics) are copied."""
        for averaged, current in zip(self.G_ema.parameters(), self.G.parameters()):
            averaged.lerp_(current, 1.0 - self.cfg.g_ema)
        for averaged, current in zip(self.G_ema.buffers(), self.G.buffers()):
            averaged.copy_(current)

    @property
    def sampler_net(self) -> nn.Module:
        """The generator that eval, sample and the sample grids draw from: G_ema with --g-ema, else G."""
        return self.G_ema if self.G_ema is not None else self.G

    # --- the tempering leaves ------------------------------------------------
    def _steps_within_tolerance(self) -> int:
        """The converge rule's counter; all processes decide together (each saw only its own batches)."""
        below = self.below_tolerance.clone()
        if self.dist.active:
            torch.distributed.all_reduce(below, op=torch.distributed.ReduceOp.MIN)
        return int(below)

    def exit_tempering(self) -> None:
        """Drop the tempering: from now on D sees X itself and the lens optimiser stops
        ("training reduces to the original GAN", paper §3)."""
        self.tempering = NoTempering()
        self.exited_at = self.step_count

    def lam(self, t: int) -> float | None:
        return self.tempering.schedule(t) if self.tempering.tempers else None

    # --- checkpoints ------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": dataclasses.asdict(self.cfg),
            "step": self.step_count,
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "lens": self.lens.state_dict() if self.lens is not None else None,
            "opt_lens": self.tempering.optimizer.state_dict() if self.lens is not None else None,
            "sampler": self.sampler.state_dict(),
            "lens_exited_at": self.exited_at,
            "below_tolerance": int(self.below_tolerance) if self.below_tolerance is not None else 0,
            # One entry per process: each draws its own noise.
            "rng": gather({"noise": self.noise.get_state().cpu(), "penalty": self.penalty_noise.get_state().cpu(),
                           "tempering": [g.get_state().cpu() for g in self.tempering.generators],
                           **({"augment": self.augment.generator.get_state().cpu()} if self.augment else {}),
                           "torch": torch.get_rng_state()}, self.dist.world),
            "replicas": gather(fingerprint(self.G, self.D, self.lens), self.dist.world),
        }

    def load_state_dict(self, state: dict) -> None:
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(state["G_ema"])
            load_optimizer_state(self.opt_g, state["opt_g"])
            load_optimizer_state(self.opt_d, state["opt_d"])
            self.exited_at = state.get("lens_exited_at")
            if self.exited_at is not None:
                self.tempering = NoTempering()
            if self.lens is not None:
                self.lens.load_state_dict(state["lens"])
                load_optimizer_state(self.tempering.optimizer, state["opt_lens"])
            self.below_tolerance.fill_(int(state.get("below_tolerance", 0)))
            self.sampler.load_state_dict(state["sampler"])
            if len(state["rng"]) != self.dist.world:
                raise UserError(f"the checkpoint was written by {len(state['rng'])} processes; resume it with as many "
                                f"(now {self.dist.world})")
            rng = state["rng"][self.dist.rank]
            self.noise.set_state(rng["noise"])
            self.penalty_noise.set_state(rng["penalty"])
            generators = self.tempering.generators
            saved = rng.get("tempering", [])   # absent before instance noise existed
            if len(saved) != len(generators):
                raise ValueError(f"it holds {len(saved)} tempering generator states, this run has {len(generators)}")
            for g, saved_state in zip(generators, saved):
                g.set_state(saved_state)
            if self.augment is not None:
                self.augment.generator.set_state(rng["augment"])
            torch.set_rng_state(rng["torch"])
            self.step_count = int(state["step"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            raise UserError(f"checkpoint does not fit this configuration: {str(exc).splitlines()[0]}") from None

    # --- samples ------------------------------------------------------------
    @torch.no_grad()
    def generate(self, count: int, stream: str = "eval") -> torch.Tensor:
        """``count`` samples G(Z) in eval mode, on the CPU, from a noise stream of
        their own: evaluating a run changes nothing in it."""
        g = torch.Generator().manual_seed(seed_for(self.cfg.seed, stream))
        net = self.sampler_net
        with eval_mode(net):
            return torch.cat([net(torch.randn(len(chunk), self.cfg.z_dim, generator=g).to(self.device)).cpu()
                              for chunk in torch.arange(count).split(500)])
