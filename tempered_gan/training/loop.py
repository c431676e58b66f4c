"""The training loop: steps of a :class:`~tempered_gan.training.trainer.Trainer` until
``cfg.steps``, with what a run writes around them (metrics.jsonl, samples,
evaluations, checkpoints) and how it stops (NaN, SIGINT/SIGTERM, a full disk).

The loop reads straight down, one commented section per concern; what an
iteration computes is :mod:`tempered_gan.training.trainer`, when the tempering leaves
:mod:`tempered_gan.method.exits`, the objects a configuration makes :mod:`tempered_gan.training.factories`.
"""
from __future__ import annotations

import dataclasses
import signal
import sys
import time
from pathlib import Path

import torch

from tempered_gan.config.train_config import TrainConfig
from tempered_gan.data.loaders import Data
from tempered_gan.errors import UserError, WriteError
from tempered_gan.training.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from tempered_gan.training.device import preflight, use_thread_policy
from tempered_gan.training.run_log import RunLog
from tempered_gan.training.snapshots import evaluate_run, write_samples
from tempered_gan.training.trainer import Trainer
from tempered_gan.training.wandb_log import WandbRun
from tempered_gan.util.distributed import SINGLE_PROCESS, Dist, any_process


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


class _Checkpoints:
    """The run's checkpoint file and the step of the last good one in it (None: none yet)."""

    def __init__(self, trainer: Trainer, path: Path, saved_step: int | None):
        self.trainer, self.path, self.saved_step = trainer, path, saved_step

    def check_finite(self) -> None:
        """Stop when a loss has been NaN or infinite on any process (read from the device only here)."""
        bad = self.trainer.first_bad.clone()
        if self.trainer.dist.active:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if int(bad) >= 0:
            raise NonFiniteLoss(f"a loss became NaN or infinite at step {int(bad)}; stopped, "
                                f"the last good checkpoint ({self.path}) is kept")

    def save(self) -> None:
        self.check_finite()
        trainer = self.trainer
        state = trainer.state_dict()          # every process takes part (it gathers their states)
        if len(set(state["replicas"])) != 1:
            raise RuntimeError(f"the {trainer.dist.world} replicas' weights differ at step {trainer.step_count}")
        if trainer.dist.main:
            save_checkpoint(self.path, state)
            self.saved_step = trainer.step_count

    def write_failed(self, exc: WriteError) -> UserError:
        """A full disk (or another failed write): one line naming the file and the checkpoint that is kept."""
        kept = (f"the last good checkpoint, step {self.saved_step}, is kept in {self.path}" if self.saved_step is not None
                else "no checkpoint had been written yet")
        return UserError(f"{exc}; stopped at step {self.trainer.step_count}, {kept}")


def log_line(record: dict) -> str:
    """A metrics record as one line for people: ``key=value``, leaving out the values
    that do not exist at this step (null in metrics.jsonl: λ and the lens terms once
    the lens has left, or without one)."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items() if v is not None)


def _window_record(trainer: Trainer, last_step: int, last_time: float, now: float) -> dict:
    """The log record of steps last_step+1 … now: λ, the mean of every named scalar the steps reported
    (over the steps that reported it, and over all processes; null when none did), speed."""
    t = trainer.step_count
    record = {"step": t, "lambda": trainer.last_lambda}
    record.update(trainer.logged.take(trainer.dist.world))
    record["steps_per_s"] = (t - last_step) / max(now - last_time, 1e-9)
    return record


def train(cfg: TrainConfig, data: Data, run_dir: Path, *, resume: bool = False, progress: bool | None = None,
          dist: Dist = SINGLE_PROCESS, device: torch.device | None = None) -> dict:
    """Train until ``cfg.steps``, writing logs, samples and checkpoints to
    ``run_dir``; with ``resume`` continue from ``run_dir/checkpoint.pt``.
    ``device``: the one :func:`~tempered_gan.training.factories.preflight` chose (else it runs here).

    Returns the last logged record. Raises :class:`Interrupted` after saving a
    checkpoint on SIGINT/SIGTERM and :class:`NonFiniteLoss` (keeping the last
    good checkpoint) when a loss becomes NaN or infinite. With several
    processes (``dist``), all of them call this; rank 0 alone writes files.
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    device = device or preflight(cfg, data, dist)
    use_thread_policy(cfg, device)
    trainer = Trainer.create(cfg, data, device, dist)
    if resume:
        trainer.load_state_dict(load_checkpoint(run_dir / CHECKPOINT))
    checkpoints = _Checkpoints(trainer, run_dir / CHECKPOINT, trainer.step_count if resume else None)
    try:
        mirror = WandbRun(run_dir, cfg.wandb, dataclasses.asdict(cfg)) if cfg.wandb and dist.main else None
        log = RunLog(run_dir, resume_step=trainer.step_count, mirror=mirror) if dist.main else None
    except WriteError as exc:
        raise checkpoints.write_failed(exc) from None
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=cfg.steps, initial=trainer.step_count, disable=not (show and dist.main), dynamic_ncols=True,
               unit="step")
    failed = True
    try:
        with _StopFlag() as stop:
            record = _loop(trainer, run_dir, log, checkpoints, bar, stop, lines=progress is None and not show)
        failed = False
    except WriteError as exc:
        raise checkpoints.write_failed(exc) from None
    finally:
        bar.close()
        if log:
            try:
                log.close(quiet=failed)
            except WriteError as exc:
                raise checkpoints.write_failed(exc) from None
    return record


def _loop(trainer: Trainer, run_dir: Path, log: RunLog | None, checkpoints: _Checkpoints, bar, stop: _StopFlag,
          lines: bool) -> dict:
    """The steps from the trainer's to ``cfg.steps``; returns the last log record.
    ``lines``: one line per log step on stderr (no terminal, no progress bar)."""
    cfg, dist = trainer.cfg, trainer.dist
    record: dict = {}
    last_time, last_step = time.perf_counter(), trainer.step_count
    while trainer.step_count < cfg.steps:
        trainer.step()   # adds its losses to trainer.logged and sets trainer.first_bad, on the device
        t = trainer.step_count
        end = t == cfg.steps
        bar.update(1)

        # Log: the mean losses since the last log step (the device is read here, not at every step).
        if t % cfg.log_every == 0 or end:
            checkpoints.check_finite()
            now = time.perf_counter()
            record = _window_record(trainer, last_step, last_time, now)
            if log:
                log.write(record)
            bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k != "step" and v is not None})
            if lines and dist.main:
                print(log_line(record), file=sys.stderr, flush=True)
            last_time, last_step = now, t

        # The tempering left after this step (Trainer.step asks the run's ExitPolicy).
        if trainer.exited_at == t and log:
            log.write({"step": t, "lens_exited": True})
            print(f"step {t}: {trainer.exits.message}; D now sees X", file=sys.stderr)

        # Samples, evaluation, checkpoint.
        if dist.main and (t % cfg.sample_every == 0 or end):
            write_samples(trainer, run_dir, log)
        if cfg.eval_every and (t % cfg.eval_every == 0 or end):
            checkpoints.check_finite()
            if log:
                log.write({"step": t, **evaluate_run(trainer)})
        if t % cfg.checkpoint_every == 0 or end:
            checkpoints.save()

        # SIGINT/SIGTERM: every process stops at the same step, after a checkpoint.
        stopping = stop.signum is not None
        if dist.active:
            stopping = any_process(stopping, trainer.device)
        if stopping:
            if t % cfg.checkpoint_every and not end:
                checkpoints.save()
            raise Interrupted(stop.signum or signal.SIGTERM, t)
    return record
