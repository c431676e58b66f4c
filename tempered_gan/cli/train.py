"""``tempered-gan train``: a new run, or ``--resume RUN_DIR`` to continue one."""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from tempered_gan.cli.options import EPILOG, THREADS, add_config_flags, config_from_args
from tempered_gan.config.train_config import RESUME_OPTIONS, TrainConfig, resolve
from tempered_gan.data.loaders import data_of
from tempered_gan.errors import UserError
from tempered_gan.training import run_folder
from tempered_gan.training.device import preflight
from tempered_gan.training.loop import train
from tempered_gan.training.summary import run_summary
from tempered_gan.util import locks
from tempered_gan.util.distributed import barrier, init_from_env, on_main


def add_parser(commands) -> None:
    parser = commands.add_parser("train", help="train a GAN, with or without a lens", epilog=f"{EPILOG} {THREADS}")
    run = add_config_flags(parser)["run"]
    run.add_argument("--out", help="run folder (default: a new numbered folder under runs/)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run folder (default: refuse)")
    run.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue that run with its saved configuration "
                                                         "(default: start a new run)")
    parser.set_defaults(run=run_command)


def run_command(args) -> int:
    if args.resume:
        return _resume(args)
    cfg = resolve(config_from_args(args))
    if args.dry_run:
        print(cfg.to_json())
        return 0
    dist = init_from_env()              # torchrun: every process runs this command
    data = data_of(cfg)                 # bad input fails before any folder is touched
    device = preflight(cfg, data, dist)
    run_dir = args.run_dir = Path(args.out) if args.out else run_folder.new_run_dir(cfg)
    run_folder.create(run_dir, cfg, args.overwrite, dist)
    _train_and_summarise(cfg, data, run_dir, None, args.progress, dist, device)
    return 0


def _resume(args) -> int:
    run_dir = Path(args.resume)
    if args.config:
        raise UserError(f"--resume continues {run_dir} with its own configuration; --config starts a new run")
    given = [f.name for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None]
    run_folder.check_resume_options(run_dir, given + [name for name in ("out", "overwrite") if getattr(args, name)])
    dist = init_from_env()
    # One process per run, held until this process ends; taken before the folder is read,
    # so a run still training before its first checkpoint is named as busy, not as empty.
    on_main(dist, lambda: locks.acquire(run_dir))
    cfg = run_folder.resumed_config(run_dir, {k: getattr(args, k) for k in RESUME_OPTIONS if getattr(args, k) is not None})
    step = run_folder.checkpoint_step(run_dir, cfg, required=True)
    if step >= cfg.steps:
        if dist.main:
            print(f"{run_dir} is already at step {step} (asked for {cfg.steps}); nothing to do", file=sys.stderr)
        return 0
    data = data_of(cfg)
    device = preflight(cfg, data, dist)
    barrier(dist)                       # every process has read the folder before rank 0 rewrites its config
    run_folder.rewrite_config(run_dir, cfg, step, dist)
    if dist.main:
        print(f"resuming {run_dir} at step {step} of {cfg.steps}", file=sys.stderr)
    _train_and_summarise(cfg, data, run_dir, step, args.progress, dist, device)
    return 0


def _train_and_summarise(cfg: TrainConfig, data, run_dir: Path, resume_step: int | None, progress, dist,
                         device) -> None:
    """Train (a new run, or resume at ``resume_step``), then end with one line
    for people (:func:`~tempered_gan.training.summary.run_summary`); metrics.jsonl holds the numbers."""
    start = time.perf_counter()
    train(cfg, data, run_dir, resume=resume_step is not None, progress=progress, dist=dist, device=device)
    if dist.main:
        print(run_summary(run_dir, cfg, first_step=resume_step or 0, seconds=time.perf_counter() - start),
              file=sys.stderr)
