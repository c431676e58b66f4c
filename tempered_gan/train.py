"""One TAN iteration and the training loop around it.

Iteration t (SPEC, "Losses"):
  1. ``critic_steps`` D updates on {L(X) as data, G(Z)} (+ gradient penalty on
     interpolates between L(X) and G(Z) for WGAN-GP);
  2. one G update, gradients through a frozen D;
  3. one lens update with weight λ(t), gradients through a frozen D, on the last
     real batch D saw, reusing the L(X) computed for D's step.

What tempers the real data (``--tempering``) is one object, ``Trainer.tempering``
(:mod:`tempered_gan.tempering`): the learned lens, instance noise or a blur. The
iteration asks it for D's real input (``real``) and D's generated input
(``fake``) and lets it update once (``update``, nothing for the fixed kinds); it
never asks which kind it is.

Random streams: G, D and the lens are initialised from generators of their own,
and noise, data order, penalty interpolates and instance noise each have their
own stream, all derived from the seed. Adding a tempering therefore changes
nothing else: same initial G and D, same batches, same noise.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from .config import CONFIG, TrainConfig
from .cuda_graphs import make_runner, uses_cuda_graphs
from .data import Data
from .distributed import SINGLE_PROCESS, Dist, any_process, average_gradients, fingerprint, gather
from .errors import UserError, WriteError, writing
from .lens import LambdaSchedule, make_lens, zero_last_layer
from .losses import OBJECTIVES, gradient_penalty, reconstruction
from .nets import make_nets, xavier_init_
from .runlog import RunLog, save_image_panel, save_point_panel
from .tempering import BaseTempering, GaussianBlur, InstanceNoise, Tempering, blend_alpha, frozen

LOSS_NAMES = ("loss_d", "loss_g", "loss_lens_adv", "loss_lens_rec")
GRID_SAMPLES = 64      # images in a sample grid
POINT_SAMPLES = 1024   # points in a 2-D scatter plot
# Lens retirement is decided every min(RETIRE_CHECK_EVERY, --retire-patience) steps, counted from step 0, whatever
# the logging, sampling, evaluation and checkpoint intervals (they must never change what is trained), and without
# a host-device synchronisation at every step: the counter lives on the device and is read only then.
RETIRE_CHECK_EVERY = 100


def seed_for(seed: int, stream: str) -> int:
    """A seed for one named random stream, stable across processes and versions."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:7], "little")


class EpochSampler:
    """Batches of indices from a fresh permutation every epoch (last partial
    batch dropped). Its position is two integers, so resuming is exact.

    With several processes, each takes its own slice of ``batch_size`` indices
    from the same permutation: the processes together see ``world × batch_size``
    distinct samples per step."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.position = 0, 0
        self._perm, self._perm_epoch = None, -1

    def next(self) -> torch.Tensor:
        stride = self.batch_size * self.world
        if self.position + stride > self.n:
            self.epoch, self.position = self.epoch + 1, 0
        if self._perm_epoch != self.epoch:
            g = torch.Generator().manual_seed(seed_for(self.seed, f"data-epoch-{self.epoch}"))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), self.epoch
        start = self.position + self.rank * self.batch_size
        self.position += stride
        return self._perm[start:start + self.batch_size]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]


def init_net(net: nn.Module, seed: int, stream: str) -> nn.Module:
    return xavier_init_(net, torch.Generator().manual_seed(seed_for(seed, stream)))


def build_nets(cfg: TrainConfig, sample_shape: tuple) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """G, D and the lens (None without one), each initialised from its own stream.

    Construction runs inside ``fork_rng`` so that PyTorch's default
    initialisers, which draw from the global generator, leave it untouched.
    """
    with torch.random.fork_rng(devices=[]):
        G, D = make_nets(cfg.arch, sample_shape, cfg.z_dim, cfg.width)
        init_net(G, cfg.seed, "G")
        init_net(D, cfg.seed, "D")
        lens = None
        if cfg.lens != "none" and cfg.tempering == "lens":
            lens = init_net(make_lens(sample_shape, cfg.lens_width, cfg.lens_blocks), cfg.seed, "lens")
            if cfg.lens_zero_init:
                zero_last_layer(lens)
    return G, D, lens


def make_optimizer(cfg: TrainConfig, params, capturable: bool = False) -> torch.optim.Optimizer:
    """Adam or RMSprop. ``capturable`` (CUDA graphs): step counts live on the
    GPU so that a graph can replay the update, and Adam is fused (one kernel)."""
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, capturable=capturable)
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), capturable=capturable,
                            **({"fused": True} if capturable else {}))


OPTIMIZER_IMPLEMENTATION = ("capturable", "fused", "foreach")   # how an optimiser steps, not what it computes


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict) -> None:
    """``opt.load_state_dict(state)``, keeping how ``opt`` steps as this run made it
    (capturable and fused for CUDA graphs, plain for eager): PyTorch restores those
    flags from the checkpoint, so an eager run resumed with ``--cuda-graphs`` got
    optimisers that cannot be captured, and a graphs run resumed eagerly on the CPU
    ones that cannot step there. The step counters follow the flags: float32 on
    the parameters' device when capturable or fused, on the CPU otherwise."""
    own = [{k: group[k] for k in OPTIMIZER_IMPLEMENTATION if k in group} for group in opt.param_groups]
    opt.load_state_dict(state)
    for group, flags in zip(opt.param_groups, own):
        group.update(flags)
        on_device = bool(group.get("capturable") or group.get("fused"))
        for p in group["params"]:
            step = opt.state.get(p, {}).get("step")
            if torch.is_tensor(step):
                opt.state[p]["step"] = step.to(device=p.device if on_device else "cpu", dtype=torch.float32)


def make_tempering(cfg: TrainConfig, lens: nn.Module | None, device: torch.device, dist: Dist,
                   autocast: Callable[[], contextlib.AbstractContextManager], capturable: bool) -> BaseTempering | None:
    """The run's tempering (None: ``--lens none``), the one place that picks its kind."""
    if cfg.lens == "none":
        return None
    schedule = LambdaSchedule(cfg.lens, cfg.k, cfg.lambda_value)
    if cfg.tempering == "noise":
        # A stream of its own (one per process): G's noise, data order and penalty draws stay those of every other arm.
        suffix = f"/rank{dist.rank}" if dist.rank else ""
        return InstanceNoise(schedule, cfg.noise_sigma,
                             torch.Generator(device).manual_seed(seed_for(cfg.seed, "instance-noise" + suffix)))
    if cfg.tempering == "blur":
        return GaussianBlur(schedule, cfg.blur_sigma)
    lens_opt = make_optimizer(dataclasses.replace(cfg, optimizer="adam", lr=cfg.lens_lr), lens.parameters(),
                              capturable=capturable)
    return Tempering(lens, schedule, cfg.loss, lens_opt, cfg.reconstruction,
                     before_update=lambda m: average_gradients(m, dist.world), autocast=autocast)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but no CUDA GPU is available")
    return device


def preflight(cfg: TrainConfig, data: Data, dist: Dist = SINGLE_PROCESS) -> torch.device:
    """Checks that need the data or the machine, made before a run folder is touched."""
    if cfg.batch_size * dist.world > len(data):
        raise UserError(f"batch size {cfg.batch_size} × {dist.world} processes is larger than the data set "
                        f"({len(data)} samples)")
    device = pick_device(cfg.device)
    if dist.active and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if cfg.cuda_graphs and device.type != "cuda":
        raise UserError(f"--cuda-graphs needs a CUDA device; this run is on {device.type}")
    if cfg.eval_every and dist.main:
        run_evaluator(cfg, device)   # a missing Inception file or data-set label fails here, not mid-run
    return device


@dataclass
class Trainer:
    """Everything one run holds; :meth:`step` is one TAN iteration."""

    cfg: TrainConfig
    data: Data
    device: torch.device
    G: nn.Module
    D: nn.Module
    tempering: BaseTempering | None               # what tempers the real data; None without (or after K, retired)
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sampler: EpochSampler
    noise: torch.Generator
    penalty_noise: torch.Generator
    dist: Dist = SINGLE_PROCESS
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    memory_format: torch.memory_format = torch.preserve_format
    step_count: int = 0
    lens_retired_at: int | None = None
    below_tolerance: torch.Tensor | None = None   # consecutive steps with ‖X − L(X)‖² < tolerance, after K
    loss_sums: torch.Tensor | None = None         # sums of the losses since the last log step (device)
    first_bad: torch.Tensor | None = None         # first step with a NaN/Inf loss, -1 if none (device)
    last_losses: torch.Tensor | None = None
    last_lambda: float | None = None              # λ(t) of the last step (None: no tempering)
    runner: object = None                         # how iterations run: eager or CUDA graphs

    @classmethod
    def create(cls, cfg: TrainConfig, data: Data, device: torch.device, dist: Dist = SINGLE_PROCESS) -> "Trainer":
        G, D, lens = build_nets(cfg, tuple(data.shape))
        memory = torch.channels_last if cfg.channels_last and data.kind == "image" else torch.preserve_format
        G, D = G.to(device, memory_format=memory), D.to(device, memory_format=memory)
        graphs = uses_cuda_graphs(cfg, device, dist)
        if graphs:
            data = data.to(device)                   # batches are gathered on the GPU
            torch.backends.cudnn.benchmark = True    # fixed shapes: pick the fastest kernels once
        # No autocast cache in CUDA graphs: a replay must not reuse casts from capture time.
        autocast = functools.partial(torch.autocast, device.type, torch.bfloat16, enabled=cfg.amp == "bf16",
                                     cache_enabled=False if graphs else None)
        if lens is not None:
            lens = lens.to(device, memory_format=memory)
        tempering = make_tempering(cfg, lens, device, dist, autocast, capturable=graphs)
        # Rank 0 uses the single-process streams, so one process is the world = 1 case.
        suffix = f"/rank{dist.rank}" if dist.rank else ""
        trainer = cls(cfg, data, device, G, D, tempering,
                      make_optimizer(cfg, G.parameters(), capturable=graphs),
                      make_optimizer(cfg, D.parameters(), capturable=graphs),
                      EpochSampler(len(data), cfg.batch_size, cfg.seed, dist.rank, dist.world),
                      torch.Generator(device).manual_seed(seed_for(cfg.seed, "noise" + suffix)),
                      torch.Generator(device).manual_seed(seed_for(cfg.seed, "penalty" + suffix)),
                      dist=dist, autocast=autocast, memory_format=memory,
                      below_tolerance=torch.zeros((), dtype=torch.long, device=device),
                      loss_sums=torch.zeros(len(LOSS_NAMES), device=device),
                      first_bad=torch.full((), -1, dtype=torch.long, device=device))
        trainer.runner = make_runner(trainer)
        return trainer

    @property
    def lens(self) -> nn.Module | None:
        return self.tempering.lens if self.tempering else None

    @property
    def generators(self) -> list[torch.Generator]:
        """Every generator an iteration draws from (CUDA graphs register them all)."""
        return [self.noise, self.penalty_noise, *(self.tempering.generators if self.tempering else [])]

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
        self.runner.run(self.phase(t), t, idx, self.last_lambda or 0.0, self.alpha(t))
        self.step_count = t
        if self.tempering is not None and t == self.exit_step:
            self.retire_lens()
        return self.last_losses

    def phase(self, t: int) -> tuple:
        """What iteration ``t`` does with the tempering (one CUDA graph each):
        ``lens`` (tempered at λ(t); the learned lens trains with weight λ),
        ``converge`` (after K: trained on ‖X − L(X)‖² alone, and whether the
        retirement rule counts), ``blend`` (after K: frozen, faded out by α(t))
        or ``plain`` (no tempering). The fixed kinds end at K (``lens_exit``
        drop), so they only ever run ``lens``."""
        cfg = self.cfg
        if self.tempering is None:
            return ("plain",)
        if cfg.lens != "sine" or t <= cfg.k:
            return ("lens",)
        if cfg.lens_exit == "blend":
            return ("blend",)
        return ("converge", cfg.lens_exit == "converge")

    @property
    def exit_step(self) -> int | None:
        """The last step that uses the lens under a bounded exit (None: no bound)."""
        cfg = self.cfg
        if cfg.lens != "sine" or cfg.lens_exit not in ("drop", "blend"):
            return None
        return cfg.k if cfg.lens_exit == "drop" else cfg.k + cfg.lens_exit_steps - 1

    def alpha(self, t: int) -> float:
        """The blend exit's α(t) = 1 − (t − K)/M for K < t < K + M (1 before)."""
        return blend_alpha(t, self.cfg.k, self.cfg.lens_exit_steps) if self.cfg.lens_exit == "blend" else 1.0

    def iteration(self, phase: tuple, idx: torch.Tensor, lam: float | torch.Tensor, alpha: float | torch.Tensor,
                  t: int | torch.Tensor) -> None:
        """The device work of one TAN iteration in ``phase`` (decided on the
        host): ``idx`` (critic_steps, B) batch indices, λ(t), α(t) and t, as
        numbers (eager) or device tensors (CUDA graph).

        Everything it changes is changed in place (weights, optimiser states,
        ``loss_sums``, ``first_bad``, ``below_tolerance``), and nothing in it
        waits for the device, so it can be captured and replayed as it is.
        """
        cfg, objective, mode = self.cfg, OBJECTIVES[self.cfg.loss], phase[0]
        for i in range(cfg.critic_steps):
            x = self.data.batch(idx[i]).to(self.device, non_blocking=True, memory_format=self.memory_format)
            keep = i == cfg.critic_steps - 1
            if mode in ("lens", "converge"):
                real = self.tempering.real(x, keep_graph=keep, lam=lam)
            elif mode == "blend":
                real = self.tempering.blend(x, alpha)
            else:
                real = x
            with torch.no_grad(), self.autocast():
                fake = self._d_fake(self.G(self._z()).float(), mode, lam)
            with self.autocast():
                loss_d = objective.d_loss(self.D(real).float(), self.D(fake).float())
                if cfg.gp_weight:
                    alpha_gp = torch.rand(real.shape[0], generator=self.penalty_noise, device=self.device)
                    loss_d = loss_d + cfg.gp_weight * gradient_penalty(self.D, real, fake, alpha_gp).float()
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            average_gradients(self.D, self.dist.world)
            self.opt_d.step()

        with frozen(self.D), self.autocast():
            loss_g = objective.g_loss(self.D(self._d_fake(self.G(self._z()), mode, lam)).float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        average_gradients(self.G, self.dist.world)
        self.opt_g.step()

        lens_adv = lens_rec = torch.zeros((), device=self.device)  # placeholders, logged as null
        if mode in ("lens", "converge"):
            # After K, λ = 0: the lens trains on ‖X − L(X)‖² alone, without D's pass.
            out = self.tempering.update(self.D, lam, adversarial=mode == "lens")
            lens_rec = out["loss_lens_rec"]
            if out["loss_lens_adv"] is not None:
                lens_adv = out["loss_lens_adv"]
            if mode == "converge" and phase[1]:
                self.below_tolerance.copy_(torch.where(lens_rec < cfg.retire_tolerance, self.below_tolerance + 1, 0))
        elif mode == "blend":   # logged only: how far D's view of the data still is from X
            lens_rec = reconstruction(x, real, cfg.reconstruction)
        losses = torch.stack([loss_d.detach(), loss_g.detach(), lens_adv, lens_rec])
        # Bookkeeping on the device, read only at log steps: no sync per step.
        self.first_bad.copy_(torch.where((self.first_bad < 0) & ~torch.isfinite(losses).all(), t, self.first_bad))
        self.loss_sums.add_(losses)
        self.last_losses = losses

    def _d_fake(self, fake: torch.Tensor, mode: str, lam: float | torch.Tensor) -> torch.Tensor:
        """D's generated input: G(Z) as the tempering shows it to D (instance noise
        adds noise to it, in D's and G's steps alike; the lens and blur leave it)."""
        return fake if mode == "plain" else self.tempering.fake(fake, lam)

    # --- lens retirement ----------------------------------------------------
    def _may_retire(self, t: int) -> bool:
        """Only a sine lens past K with the converge exit retires by the rule."""
        return self.cfg.lens == "sine" and self.cfg.lens_exit == "converge" and t > self.cfg.k

    def should_retire(self) -> bool:
        """The converge exit's rule; all processes decide together (each saw only its own batches)."""
        if self.tempering is None or not self._may_retire(self.step_count):
            return False
        below = self.below_tolerance.clone()
        if self.dist.active:
            torch.distributed.all_reduce(below, op=torch.distributed.ReduceOp.MIN)
        return int(below) >= self.cfg.retire_patience

    def retire_lens(self) -> None:
        """Drop the tempering: from now on D sees X itself and the lens optimiser stops
        ("training reduces to the original GAN", paper §3)."""
        self.tempering = None
        self.lens_retired_at = self.step_count

    def lam(self, t: int) -> float | None:
        return self.tempering.schedule(t) if self.tempering else None

    # --- checkpoints ------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": dataclasses.asdict(self.cfg),
            "step": self.step_count,
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "lens": self.lens.state_dict() if self.lens else None,
            "opt_lens": self.tempering.optimizer.state_dict() if self.lens is not None else None,
            "sampler": self.sampler.state_dict(),
            "lens_retired_at": self.lens_retired_at,
            "below_tolerance": int(self.below_tolerance) if self.below_tolerance is not None else 0,
            # One entry per process: each draws its own noise.
            "rng": gather({"noise": self.noise.get_state().cpu(), "penalty": self.penalty_noise.get_state().cpu(),
                           "tempering": [g.get_state().cpu() for g in self.tempering.generators] if self.tempering else [],
                           "torch": torch.get_rng_state()}, self.dist.world),
            "replicas": gather(fingerprint(self.G, self.D, self.lens), self.dist.world),
        }

    def load_state_dict(self, state: dict) -> None:
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            load_optimizer_state(self.opt_g, state["opt_g"])
            load_optimizer_state(self.opt_d, state["opt_d"])
            self.lens_retired_at = state.get("lens_retired_at")
            if self.lens_retired_at is not None:
                self.tempering = None
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
            generators = self.tempering.generators if self.tempering else []
            saved = rng.get("tempering", [])   # absent before instance noise existed
            if len(saved) != len(generators):
                raise ValueError(f"it holds {len(saved)} tempering generator states, this run has {len(generators)}")
            for g, saved_state in zip(generators, saved):
                g.set_state(saved_state)
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
        mode = self.G.training
        self.G.eval()
        try:
            return torch.cat([self.G(torch.randn(len(chunk), self.cfg.z_dim, generator=g).to(self.device)).cpu()
                              for chunk in torch.arange(count).split(500)])
        finally:
            self.G.train(mode)

    @torch.no_grad()
    def samples(self, count: int = GRID_SAMPLES) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """G(Z), what D sees as real (L(X), L_α(X), noisy or blurred X; None
        without a tempering) and X, at fixed noise and a fixed real batch, in eval
        mode and from a generator of their own, so that drawing them changes no
        state of the run."""
        count = min(count, len(self.data))
        g = torch.Generator().manual_seed(seed_for(self.cfg.seed, "samples"))
        z = torch.randn(count, self.cfg.z_dim, generator=g).to(self.device)
        x = self.data.batch(torch.randperm(len(self.data), generator=g)[:count]).to(self.device)
        mode = self.G.training
        self.G.eval()
        try:
            tempered = None
            if self.tempering is not None:
                t = self.step_count
                tempered = self.tempering.preview(x, self.tempering.schedule(t), self.alpha(t), generator=g)
            return self.G(z), tempered, x
        finally:
            self.G.train(mode)


def load_run(run_dir: Path, device: str | None = None) -> Trainer:
    """The trainer of a saved run, at its checkpoint (for eval and sample)."""
    from .data import load_dataset

    cfg = TrainConfig.load(Path(run_dir) / CONFIG)
    state = load_checkpoint(Path(run_dir) / CHECKPOINT)
    # --cuda-graphs is how a run trained, not what it is: eval and sample never step, and run anywhere.
    cfg = dataclasses.replace(cfg, device=device or cfg.device, cuda_graphs=False)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    trainer = Trainer.create(cfg, data, preflight(cfg, data))
    if isinstance(state.get("rng"), list) and len(state["rng"]) > 1:
        # A run of several processes: eval and sample train nothing, so process 0's random states stand for all.
        state = {**state, "rng": state["rng"][:1]}
    trainer.load_state_dict(state)
    return trainer


class NonFiniteLoss(UserError):
    pass


class Interrupted(Exception):
    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step = signum, step


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""

    def __init__(self):
        self.signum = None

    def __enter__(self):
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


def run_evaluator(cfg: TrainConfig, device: torch.device, kid: bool = True):
    """The evaluator of a run's FID settings (built once per process)."""
    from .metrics import evaluator_for

    return evaluator_for(cfg.dataset, cfg.data_dir, cfg.fid_features, cfg.fid_samples, None, str(device),
                         cfg.inception_weights, kid=kid)


def evaluate_run(trainer: Trainer, kid: bool = True) -> dict:
    """FID (and mode coverage where defined) of G against the real data X; ``kid=False``
    skips KID, the costly part on 2-D data (FID and coverage are the same either way)."""
    return run_evaluator(trainer.cfg, trainer.device, kid)(trainer.generate)


def sample_captions(trainer: Trainer) -> tuple[str, str]:
    """The title of a sample panel at the trainer's step and the name of its middle
    panel, which always shows what D sees as real at that step."""
    t = trainer.step_count
    if trainer.tempering is not None:
        return f"step {t}, λ = {trainer.tempering.schedule(t):.3f}", trainer.tempering.label
    if trainer.lens_retired_at is not None:
        return (f"step {t}, {trainer.cfg.tempering} left after step {trainer.lens_retired_at}",
                "X: what D sees now")
    return f"step {t}, no lens", "X: what D sees (no lens)"


def write_sample_panel(trainer: Trainer, path: Path, count: int) -> torch.Tensor | None:
    """G(Z) | what D sees as real | X at the trainer's step, titled: a scatter plot
    for 2-D data, else image grids (returned, for TensorBoard). Once the tempering
    has left (or without one) D sees X, and the middle panel shows it."""
    fake, shown, real = trainer.samples(count)
    title, name = sample_captions(trainer)
    shown = real if shown is None else shown
    if trainer.data.kind == "points":
        save_point_panel(path, fake, shown, real, title, name)
        return None
    return save_image_panel(path, fake, shown, real, title, ("G(Z)", name, "X"))


def write_samples(trainer: Trainer, run_dir: Path, log: RunLog) -> Path:
    folder = run_dir / "samples"
    with writing(folder):
        folder.mkdir(exist_ok=True)
    path = folder / f"step_{trainer.step_count:07d}.png"
    panel = write_sample_panel(trainer, path, POINT_SAMPLES if trainer.data.kind == "points" else GRID_SAMPLES)
    if panel is not None:
        with writing(run_dir / "tb"):
            log.tb.add_image("samples/generated|lensed|real", panel, trainer.step_count)
    return path


def _window_means(trainer: Trainer, sums: list[float], last_step: int, t: int) -> dict:
    """Mean losses over steps last_step+1 … t. A lens loss is averaged over the
    steps that computed it, and null when none did: the adversarial term stops
    at K (λ = 0) and exists only for the learned lens, ‖X − L(X)‖² (for noise
    and blur ‖X − T(X)‖², how far D's real input is from X) when the tempering leaves."""
    cfg, retired = trainer.cfg, trainer.lens_retired_at
    if cfg.lens == "none":                     # a run without a tempering
        lens_until = last_step
    else:
        lens_until = t if retired is None else min(t, retired)
    if cfg.tempering != "lens":                # only the learned lens has an adversarial loss
        adv_until = last_step
    else:
        adv_until = lens_until if cfg.lens != "sine" else min(lens_until, cfg.k)
    counts = [t - last_step, t - last_step, adv_until - last_step, lens_until - last_step]
    return {k: (v / n if n > 0 else None) for k, v, n in zip(LOSS_NAMES, sums, counts)}


def log_line(record: dict) -> str:
    """A metrics record as one line for people: ``key=value``, leaving out the values
    that do not exist at this step (null in metrics.jsonl: λ and the lens terms once
    the lens has left, or without one)."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items() if v is not None)


def _exit_message(cfg: TrainConfig) -> str:
    if cfg.tempering != "lens":
        return f"{cfg.tempering} tempering ended at K = {cfg.k} (σ = 0)"
    if cfg.lens_exit == "converge":
        return (f"lens retired (‖X − L(X)‖² < {cfg.retire_tolerance:g} for {cfg.retire_patience} steps, "
                "--lens-exit converge)")
    if cfg.lens_exit == "blend":
        return f"lens gone (faded out over {cfg.lens_exit_steps} steps after K = {cfg.k}, --lens-exit blend)"
    return f"lens dropped at K = {cfg.k} (--lens-exit drop)"


def train(cfg: TrainConfig, data: Data, run_dir: Path, *, resume: bool = False,
          progress: bool | None = None, dist: Dist = SINGLE_PROCESS) -> dict:
    """Train until ``cfg.steps``, writing logs, samples and checkpoints to
    ``run_dir``; with ``resume`` continue from ``run_dir/checkpoint.pt``.

    Returns the last logged record. Raises :class:`Interrupted` after saving a
    checkpoint on SIGINT/SIGTERM and :class:`NonFiniteLoss` (keeping the last
    good checkpoint) when a loss becomes NaN or infinite. With several
    processes (``dist``), all of them call this; rank 0 alone writes files.
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    device = preflight(cfg, data, dist)
    trainer = Trainer.create(cfg, data, device, dist)
    if resume:
        trainer.load_state_dict(load_checkpoint(run_dir / CHECKPOINT))
    ckpt_path = run_dir / CHECKPOINT
    saved = {"step": trainer.step_count if resume else None}   # the last good checkpoint

    def write_failed(exc: WriteError) -> UserError:
        """A full disk (or another failed write): one line naming the file and the checkpoint that is kept."""
        kept = (f"the last good checkpoint, step {saved['step']}, is kept in {ckpt_path}" if saved["step"] is not None
                else "no checkpoint had been written yet")
        return UserError(f"{exc}; stopped at step {trainer.step_count}, {kept}")

    try:
        log = RunLog(run_dir, resume_step=trainer.step_count) if dist.main else None
    except WriteError as exc:
        raise write_failed(exc) from None

    sums = trainer.loss_sums
    counted = 0
    record: dict = {}
    last_time, last_step = time.perf_counter(), trainer.step_count

    def check_finite() -> None:
        bad = trainer.first_bad.clone()
        if dist.active:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if int(bad) >= 0:
            raise NonFiniteLoss(f"a loss became NaN or infinite at step {int(bad)}; stopped, "
                                f"the last good checkpoint ({ckpt_path}) is kept")

    def checkpoint() -> None:
        check_finite()
        state = trainer.state_dict()          # every process takes part (it gathers their states)
        if len(set(state["replicas"])) != 1:
            raise RuntimeError(f"the {dist.world} replicas' weights differ at step {trainer.step_count}")
        if dist.main:
            save_checkpoint(ckpt_path, state)
            saved["step"] = trainer.step_count

    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=cfg.steps, initial=trainer.step_count, disable=not (show and dist.main), dynamic_ncols=True, unit="step")
    failed = True
    try:
        with _StopFlag() as stop:
            while trainer.step_count < cfg.steps:
                trainer.step()   # adds its losses to `sums` and sets `first_bad`, on the device
                t = trainer.step_count
                counted += 1
                bar.update(1)
                if t % cfg.log_every == 0 or t == cfg.steps:
                    check_finite()
                    if dist.active:                       # log the mean over all processes
                        torch.distributed.all_reduce(sums)
                        sums /= dist.world
                    now = time.perf_counter()
                    record = {"step": t, "lambda": trainer.last_lambda}
                    record.update(_window_means(trainer, sums.tolist(), last_step, t))
                    record["steps_per_s"] = (t - last_step) / max(now - last_time, 1e-9)
                    if log:
                        log.write(record)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k != "step" and v is not None})
                    if progress is None and not show and dist.main:   # no terminal: one line per log step
                        print(log_line(record), file=sys.stderr, flush=True)
                    sums.zero_()
                    counted, last_time, last_step = 0, now, t
                if t % min(RETIRE_CHECK_EVERY, cfg.retire_patience) == 0 and trainer.should_retire():
                    trainer.retire_lens()
                if trainer.lens_retired_at == t and log:   # the lens left at this step
                    log.write({"step": t, "lens_retired": True})
                    print(f"step {t}: {_exit_message(cfg)}; D now sees X", file=sys.stderr)
                if dist.main and (t % cfg.sample_every == 0 or t == cfg.steps):
                    write_samples(trainer, run_dir, log)
                if cfg.eval_every and (t % cfg.eval_every == 0 or t == cfg.steps):
                    check_finite()
                    if log:
                        log.write({"step": t, **evaluate_run(trainer)})
                if t % cfg.checkpoint_every == 0 or t == cfg.steps:
                    checkpoint()
                stopping = stop.signum is not None
                if dist.active:                           # stop together, at the same step
                    stopping = any_process(stopping, device)
                if stopping:
                    if t % cfg.checkpoint_every and t != cfg.steps:
                        checkpoint()
                    raise Interrupted(stop.signum or signal.SIGTERM, t)
        failed = False
    except WriteError as exc:
        raise write_failed(exc) from None
    finally:
        bar.close()
        if log:
            try:
                log.close(quiet=failed)
            except WriteError as exc:
                raise write_failed(exc) from None
    return record
