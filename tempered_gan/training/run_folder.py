"""Run folders: a new one (numbered, checked, locked, written), and the one rule for
continuing one, which ``tempered-gan train --resume`` and ``compare`` share.

A run folder holds ``config.json`` (the resolved configuration), ``checkpoint.pt``,
``metrics.jsonl``, ``samples/``, ``tb/``, its lock (:mod:`tempered_gan.util.locks`)
and, when a compare run stopped on a NaN, ``FAILED`` with the reason.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from tempered_gan.config.train_config import CONFIG, RESUME_OPTIONS, TrainConfig, resolve, run_identity
from tempered_gan.errors import UserError, WriteError
from tempered_gan.training.checkpoint import CHECKPOINT, load_checkpoint
from tempered_gan.training.run_log import METRICS, read_metric_lines
from tempered_gan.util import locks
from tempered_gan.util.atomic_files import atomic_write_bytes
from tempered_gan.util.distributed import Dist, barrier, on_main

FAILED = "FAILED"   # why a run stopped on a NaN/Inf loss (compare records it and moves on)


# --- a run that stopped on a NaN -------------------------------------------------

def recorded_failure(run_dir: Path) -> str | None:
    """Why the run in ``run_dir`` failed, or None when it has not."""
    path = Path(run_dir) / FAILED
    return path.read_text().strip() if path.exists() else None


def record_failure(run_dir: Path, reason: str) -> None:
    atomic_write_bytes(Path(run_dir) / FAILED, f"{reason}\n".encode())


# --- a new run ---------------------------------------------------------------------

def new_run_dir(cfg: TrainConfig, root: Path = Path("runs")) -> Path:
    """The next numbered folder under ``root``: ``NNNNN-<dataset>-<loss>-<what tempers>-s<seed>``, the
    tempering named as ``none``, ``<schedule>`` (the lens) or ``<schedule>-<kind>`` (noise, blur)."""
    taken = [int(p.name[:5]) for p in root.glob("[0-9][0-9][0-9][0-9][0-9]-*")] if root.exists() else []
    tempers = ("none" if cfg.tempering == "none" else
               cfg.schedule if cfg.tempering == "lens" else f"{cfg.schedule}-{cfg.tempering}")
    return root / f"{max(taken, default=-1) + 1:05d}-{cfg.dataset}-{cfg.loss}-{tempers}-s{cfg.seed}"


def check_new(path: Path, overwrite: bool, probe: bool = True) -> bool:
    """May a new run go into ``path``? Returns whether an old run must be removed.
    With ``probe``, a folder another process holds is refused first (naming it)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a folder")
    if probe:
        locks.check_free(path)
    if path.exists() and locks.entries(path):
        if not overwrite:
            raise UserError(f"{path} already holds a run; pass --overwrite to replace it or --resume {path} to continue it")
        if not (path / CONFIG).exists():
            raise UserError(f"{path} is not a tempered-gan run folder (no {CONFIG}); refusing to overwrite it")
        return True
    return False


def _take_new(path: Path, overwrite: bool) -> None:
    locks.acquire(path)
    check_new(path, overwrite)      # again, now that no other process can start a run here


def create(run_dir: Path, cfg: TrainConfig, overwrite: bool, dist: Dist) -> None:
    """Make ``run_dir`` the folder of a new run of ``cfg``: checked, locked by rank 0
    until this process ends, an old run removed with ``overwrite``, the configuration
    written. Every process calls it; each has checked before rank 0 changes anything."""
    remove_old = check_new(run_dir, overwrite, probe=dist.main)
    on_main(dist, lambda: _take_new(run_dir, overwrite))   # held until this process ends
    barrier(dist)
    if dist.main:
        if remove_old:
            locks.clear(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / CONFIG, cfg.to_json().encode())
        print(f"run folder: {run_dir}" + (f" ({dist.world} processes)" if dist.active else ""), file=sys.stderr)
    barrier(dist)


# --- continuing a run --------------------------------------------------------------

def check_resume_options(run_dir: Path, given: list[str]) -> None:
    """``--resume run_dir`` with the options named ``given``: the folder must exist,
    and only RESUME_OPTIONS may change (not the run itself, nor where it is)."""
    if not run_dir.is_dir():
        raise UserError(f"--resume {run_dir}: no such run folder")
    extra = [f"--{name.replace('_', '-')}" for name in given if name not in RESUME_OPTIONS]
    if extra:
        raise UserError(f"--resume continues the saved configuration; it takes only --steps, --device, the speed, "
                        f"logging and evaluation options, not {', '.join(extra)}")


def open_run(run_dir: Path) -> None:
    """Check an existing run folder before reading it (``eval``, ``sample``): refused, naming the
    holder, while a process trains there (before its first checkpoint too). A probe that writes and
    creates nothing, so runs on read-only media or of another user stay readable, and a reader never
    blocks the run's owner; the checkpoint it then reads is always whole (written atomically)."""
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    locks.check_free(run_dir)


def resumed_config(run_dir: Path, changes: dict) -> TrainConfig:
    """The saved configuration of ``run_dir`` with ``changes`` (RESUME_OPTIONS), resolved."""
    return resolve(dataclasses.replace(TrainConfig.load(run_dir / CONFIG), **changes))


def checkpoint_step(run_dir: Path, cfg: TrainConfig, *, required: bool = False) -> int | None:
    """The step at which ``cfg`` continues the run in ``run_dir`` (None: no checkpoint yet,
    start afresh; ``required``: refuse instead). The one rule for continuing a run:

    * its ``config.json`` is the same run as ``cfg`` (all but RESUME_OPTIONS);
    * its ``checkpoint.pt`` loads and holds that run too (else the folder mixes two runs);
    * its ``metrics.jsonl`` is readable (a damaged log fails here, before anything is rewritten).
    """
    if run_identity(TrainConfig.load(run_dir / CONFIG)) != run_identity(cfg):
        raise UserError(f"{run_dir} was trained with another configuration; choose another --out for this comparison")
    if not required and not (run_dir / CHECKPOINT).exists():
        return None
    state = load_checkpoint(run_dir / CHECKPOINT)
    if (run_dir / METRICS).exists():
        read_metric_lines(run_dir / METRICS, warn=False)
    try:
        saved = TrainConfig.from_dict(state["config"])
    except (KeyError, TypeError, UserError):
        raise UserError(f"{run_dir / CHECKPOINT} holds no usable configuration") from None
    differing = [f.name for f in dataclasses.fields(TrainConfig)
                 if f.name not in RESUME_OPTIONS and getattr(saved, f.name) != getattr(cfg, f.name)]
    if differing:
        raise UserError(f"{run_dir}: {CONFIG} and {CHECKPOINT} disagree on {', '.join(differing)}; "
                        "the folder mixes two incompatible runs")
    return int(state["step"])


def rewrite_config(run_dir: Path, cfg: TrainConfig, step: int, dist: Dist) -> None:
    """Rank 0 saves the continued run's configuration (new --steps, speed options ...)."""
    if not dist.main:
        return
    try:
        atomic_write_bytes(run_dir / CONFIG, cfg.to_json().encode())
    except WriteError as exc:
        raise UserError(f"{exc}; nothing changed, the last good checkpoint, step {step}, is kept in "
                        f"{run_dir / CHECKPOINT}") from None
