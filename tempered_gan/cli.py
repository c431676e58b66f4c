"""``tempered-gan`` command line: ``train`` (new run, or ``--resume RUN_DIR``).

Every option of :class:`~tempered_gan.config.TrainConfig` is a flag of the same
name with dashes. Bad input ends with one ``error:`` line and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import sys
from pathlib import Path

from .checkpoint import CHECKPOINT, atomic_write_bytes, load_checkpoint
from .config import TrainConfig, resolve
from .errors import UserError

CONFIG = "config.json"

HELP = {
    "dataset": "mnist, fashion-mnist, color-mnist, color-fashion-mnist, cifar10, celeba, folder, "
               "mixture-ring8, mixture-grid25 (default: mixture-ring8)",
    "data_dir": "folder holding the data set's files (default: the data set's usual place)",
    "loss": "gan, lsgan or wgan-gp (default: gan)",
    "lens": "λ schedule: sine, constant or none (no lens at all; default: sine)",
    "k": "K of the sine schedule: λ reaches 0 at step K (default: 10000; half the steps for mixtures)",
    "lambda_value": "λ of the constant schedule (default: 1)",
    "steps": "generator iterations in all (default: 50000; 4000 for mixtures)",
    "batch_size": "default: 64 (256 for mixtures)",
    "seed": "seeds G/D initialisation, data order and noise; the lens has a stream of its own",
    "arch": "dcgan, lsgan, wgan-gp or mlp (default: follows --loss and --dataset)",
    "width": "channel multiplier C (default 64; 128 for wgan-gp and the mlp)",
    "z_dim": "noise dimension (default 100; 128 for wgan-gp; 2 for mixtures)",
    "lens_width": "feature maps in the lens (default 32)",
    "lens_blocks": "residual blocks in the lens (default 8)",
    "lens_zero_init": "start the lens exactly at the identity (zero last layer); paper: off",
    "reconstruction": "‖X − L(X)‖² reduction: mean over elements (default) or sum per sample",
    "optimizer": "adam (default) or rmsprop, for G and D",
    "lr": "learning rate (default 1e-4; 1e-3 for mixtures)",
    "lens_lr": "lens learning rate (default: --lr)",
    "beta1": "Adam β1 (default 0.5)",
    "beta2": "Adam β2 (default 0.999; 0.9 for wgan-gp)",
    "critic_steps": "D updates per G update (default 1; 5 for wgan-gp)",
    "gp_weight": "gradient-penalty weight (default 10 for wgan-gp, else 0)",
    "log_every": "steps between lines of metrics.jsonl (default 100)",
    "sample_every": "steps between sample grids (default: a tenth of the run)",
    "checkpoint_every": "steps between checkpoints (default: a tenth of the run, at most 5000)",
    "device": "auto (default), cpu, cuda or cuda:N",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        self.exit(2, f"{self.prog}: error: {message}\n")


def _flag_type(field: dataclasses.Field):
    text = str(field.type)
    return int if text.startswith("int") else float if text.startswith("float") else str


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tempered-gan", description="Tempered Adversarial Networks (Sajjadi et al., 2018)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser("train", help="train a GAN, with or without a lens")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            train.add_argument(flag, action="store_true", default=None, help=HELP[field.name])
        else:
            train.add_argument(flag, type=_flag_type(field), default=None, help=HELP[field.name])
    train.add_argument("--out", help="run folder (default: a new numbered folder under runs/)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    train.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue that run with its saved configuration")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar (default: when stderr is a terminal; else a line per log step)")
    return parser


def _config_from_args(args) -> TrainConfig:
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name) is not None}
    return TrainConfig(**given)


def _new_run_dir(cfg: TrainConfig, root: Path = Path("runs")) -> Path:
    taken = [int(p.name[:5]) for p in root.glob("[0-9][0-9][0-9][0-9][0-9]-*")] if root.exists() else []
    return root / f"{max(taken, default=-1) + 1:05d}-{cfg.dataset}-{cfg.loss}-{cfg.lens}-s{cfg.seed}"


def _prepare_run_dir(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a folder")
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise UserError(f"{path} already holds a run; pass --overwrite to replace it or --resume {path} to continue it")
        if not (path / CONFIG).exists():
            raise UserError(f"{path} is not a tempered-gan run folder (no {CONFIG}); refusing to overwrite it")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def _load_data(cfg: TrainConfig):
    from .data import load_dataset
    return load_dataset(cfg.dataset, cfg.data_dir)


def cmd_train(args) -> int:
    from .train import preflight, train

    if args.resume:
        return _resume(args)
    cfg = resolve(_config_from_args(args))
    if args.dry_run:
        print(cfg.to_json())
        return 0
    data = _load_data(cfg)               # bad input fails before any folder is touched
    preflight(cfg, data)
    run_dir = args.run_dir = Path(args.out) if args.out else _new_run_dir(cfg)
    _prepare_run_dir(run_dir, args.overwrite)
    atomic_write_bytes(run_dir / CONFIG, cfg.to_json().encode())
    print(f"run folder: {run_dir}", file=sys.stderr)
    record = train(cfg, data, run_dir, progress=args.progress)
    print(f"done: {cfg.steps} steps; {json.dumps(record)}", file=sys.stderr)
    return 0


# Options that may change on resume without changing the run itself.
_RESUME_OPTIONS = {"steps", "device", "log_every", "sample_every", "checkpoint_every", "data_dir"}


def _resume(args) -> int:
    from .train import preflight, train

    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise UserError(f"--resume {run_dir}: no such run folder")
    extra = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name) is not None and f.name not in _RESUME_OPTIONS]
    extra += [flag for flag, given in (("--out", args.out), ("--overwrite", args.overwrite)) if given]
    if extra:
        raise UserError(f"--resume continues the saved configuration; it takes only --steps, --device and the "
                        f"logging intervals, not {', '.join(extra)}")
    saved = TrainConfig.load(run_dir / CONFIG)
    state = load_checkpoint(run_dir / CHECKPOINT)
    try:
        ckpt_cfg = TrainConfig.from_dict(state["config"])
    except (KeyError, TypeError, UserError):
        raise UserError(f"{run_dir / CHECKPOINT} holds no usable configuration") from None
    differing = [f.name for f in dataclasses.fields(TrainConfig)
                 if f.name not in _RESUME_OPTIONS and getattr(saved, f.name) != getattr(ckpt_cfg, f.name)]
    if differing:
        raise UserError(f"{run_dir}: {CONFIG} and {CHECKPOINT} disagree on {', '.join(differing)}; "
                        "the folder mixes two incompatible runs")
    cfg = resolve(dataclasses.replace(saved, **{k: getattr(args, k) for k in _RESUME_OPTIONS
                                                if getattr(args, k) is not None}))
    if state["step"] >= cfg.steps:
        print(f"{run_dir} is already at step {state['step']} (asked for {cfg.steps}); nothing to do", file=sys.stderr)
        return 0
    data = _load_data(cfg)
    preflight(cfg, data)
    atomic_write_bytes(run_dir / CONFIG, cfg.to_json().encode())
    print(f"resuming {run_dir} at step {state['step']} of {cfg.steps}", file=sys.stderr)
    record = train(cfg, data, run_dir, resume=True, progress=args.progress)
    print(f"done: {cfg.steps} steps; {json.dumps(record)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .train import Interrupted, NonFiniteLoss

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed option (already printed as one line)
        return exc.code
    try:
        return {"train": cmd_train}[args.command](args)
    except NonFiniteLoss as exc:
        print(f"tempered-gan: error: {exc}", file=sys.stderr)
        return 3
    except UserError as exc:
        print(f"tempered-gan: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        where = args.resume or getattr(args, "run_dir", "RUN_DIR")
        print(f"tempered-gan: {exc}; checkpoint saved; continue with: tempered-gan train --resume {where}",
              file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("tempered-gan: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
