"""``tempered-gan`` command line: ``train`` (new run, or ``--resume RUN_DIR``),
``compare``, ``reproduce``, ``eval`` and ``sample``.

The parser is :mod:`tempered_gan.cli.parser`; run folders and resuming are
:mod:`tempered_gan.training.run_folder`, presets :mod:`tempered_gan.config.presets`, the machine
:mod:`tempered_gan.training.factories`. Bad input ends with one ``error:`` line and exit status 2.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import signal
import sys
from pathlib import Path

from tempered_gan.cli.parser import build_parser, config_from_args, given_options, translate_deprecated
from tempered_gan.config.train_config import RESUME_OPTIONS, TrainConfig, resolve
from tempered_gan.errors import UserError
from tempered_gan.training import run_folder
from tempered_gan.util import locks


def load_data(cfg: TrainConfig):
    from tempered_gan.data.loaders import data_of
    return data_of(cfg)


def cmd_train(args) -> int:
    from tempered_gan.training.device import preflight
    from tempered_gan.util.distributed import init_from_env

    if args.resume:
        return _resume(args)
    cfg = resolve(config_from_args(args))
    if args.dry_run:
        print(cfg.to_json())
        return 0
    dist = init_from_env()              # torchrun: every process runs this command
    data = load_data(cfg)               # bad input fails before any folder is touched
    device = preflight(cfg, data, dist)
    run_dir = args.run_dir = Path(args.out) if args.out else run_folder.new_run_dir(cfg)
    run_folder.create(run_dir, cfg, args.overwrite, dist)
    _train_and_summarise(cfg, data, run_dir, None, args.progress, dist, device)
    return 0


def _resume(args) -> int:
    from tempered_gan.training.device import preflight
    from tempered_gan.util.distributed import barrier, init_from_env, on_main

    run_dir = Path(args.resume)
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
    data = load_data(cfg)
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
    import time

    from tempered_gan.training.loop import train
    from tempered_gan.training.summary import run_summary

    start = time.perf_counter()
    train(cfg, data, run_dir, resume=resume_step is not None, progress=progress, dist=dist, device=device)
    if dist.main:
        print(run_summary(run_dir, cfg, first_step=resume_step or 0, seconds=time.perf_counter() - start),
              file=sys.stderr)


def _command_line(args) -> str:
    return "tempered-gan " + " ".join(shlex.quote(a) for a in args.argv)


def cmd_compare(args) -> int:
    from tempered_gan.config.presets import preset
    from tempered_gan.studies.arms import parse_arms
    from tempered_gan.studies.compare import compare
    from tempered_gan.studies.shards import grid_options

    chosen = preset(args.preset)
    seeds = parse_seeds(args.seeds if args.seeds is not None else str(chosen.seeds))
    arms = parse_arms(args.arms or chosen.arms)
    fail_fid = args.fail_fid if args.fail_fid is not None else chosen.fail_fid
    shard = grid_options(args.jobs, args.shard, args.report_only, "grid")
    given = _grid_run_options(args)
    base = TrainConfig(**{**chosen.options, **given})
    report = compare(base, arms, seeds, Path(args.out), command=_command_line(args), fail_factor=args.fail_factor,
                     fail_fid=fail_fid, fail_modes=args.fail_modes, reference=args.reference,
                     progress=args.progress, jobs=args.jobs, shard=shard, report_only=args.report_only)
    if report is not None:
        print(f"report: {report}", file=sys.stderr)
    return 0


def _grid_run_options(args) -> dict:
    """The run options given to ``compare`` or ``sweep``: neither takes a seed (``--seeds``), needs FID
    during training, and sets the tempering per arm."""
    if args.seed is not None:
        raise UserError(f"{args.command} runs several seeds; choose them with --seeds N, A-B or a list")
    if args.eval_every == 0:
        raise UserError(f"{args.command} needs FID during training: --eval-every must be at least 1 "
                        "(leave it out for ten evaluations per run)")
    given = given_options(args)
    if {"schedule", "lambda_value", "tempering"} & set(given):
        raise UserError(f"{args.command} sets the tempering per arm; choose arms with --arms "
                        "none,sine,constant,noise,blur,r1")
    return given


def cmd_sweep(args) -> int:
    from tempered_gan.studies.arms import parse_arms
    from tempered_gan.studies.shards import grid_options
    from tempered_gan.studies.sweep import parse_grid, sweep

    axes = parse_grid(args.grid or [])
    seeds = parse_seeds(args.seeds if args.seeds is not None else "3")
    arms = parse_arms(args.arms or "none,sine")
    shard = grid_options(args.jobs, args.shard, args.report_only, "sweep")
    given = _grid_run_options(args)
    fixed = sorted(set(given) & set(axes))
    if fixed:
        raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in fixed)} is an axis of the grid; "
                        "give its values in --grid only")
    report = sweep(TrainConfig(**given), axes, arms, seeds, Path(args.out), command=_command_line(args),
                   fail_fid=args.fail_fid, fail_modes=args.fail_modes, reference=args.reference,
                   map_axes=args.map.split(",") if args.map else None, progress=args.progress, jobs=args.jobs,
                   shard=shard, report_only=args.report_only)
    if report is not None:
        print(f"report: {report}", file=sys.stderr)
    return 0


def cmd_reproduce(args) -> int:
    from tempered_gan.studies.reproduce import parse_rows, reproduce
    from tempered_gan.studies.shards import grid_options

    shard = grid_options(args.jobs, args.shard, args.report_only, "table")
    overrides = given_options(args)
    features = overrides.pop("fid_features", "inception")
    if features not in ("inception", "classifier"):
        raise UserError(f"reproduce measures FID with inception (the paper's) or classifier features, not {features!r}")
    weights = overrides.pop("inception_weights", None)
    if overrides.pop("dinov2_weights", None):
        raise UserError("reproduce measures FID with inception (the paper's) or classifier features; "
                        "--dinov2-weights does not apply")
    report = reproduce(parse_rows(args.rows), Path(args.out), scale=args.scale, seeds=args.seeds,
                       arms=args.arms.split(",") if args.arms else None, shard=shard, report_only=args.report_only,
                       fid_features=features, inception_weights=weights, overrides=overrides, jobs=args.jobs,
                       progress=args.progress, command=_command_line(args))
    if report is not None:
        print(f"report: {report}", file=sys.stderr)
    return 0


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: N (seeds 0 … N−1), A-B (A … B) or a comma-separated list."""
    try:
        if "," in text:
            seeds = [int(x) for x in text.split(",") if x.strip()]
        elif "-" in text.strip()[1:]:
            first, last = (int(x) for x in text.strip().split("-", 1))
            if last < first:
                raise UserError(f"--seeds {text}: the range ends before it starts")
            seeds = list(range(first, last + 1))
        else:
            count = int(text)
            if count < 1:
                raise UserError(f"--seeds must be at least 1, got {count}")
            seeds = list(range(count))
    except ValueError:
        raise UserError(f"--seeds takes N, A-B or a list such as 3,5,8; got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise UserError(f"--seeds {text}: seeds are whole numbers ≥ 0")
    return seeds   # a seed named twice is refused where every grid is checked (experiment.grid_configs)


def cmd_eval(args) -> int:
    from tempered_gan.training.snapshots import evaluate_run, load_run

    options = {k: getattr(args, k) for k in ("fid_samples", "fid_features", "inception_weights", "dinov2_weights")
               if getattr(args, k)}
    trainer = load_run(Path(args.run_dir), device=args.device, **options)
    print(json.dumps({"step": trainer.step_count, **evaluate_run(trainer)}))
    return 0


def cmd_sample(args) -> int:
    from tempered_gan.training.snapshots import export_samples, load_run, write_sample_panel

    if args.count is not None and args.count < 1:
        raise UserError(f"--n must be at least 1, got {args.count}")
    trainer = load_run(Path(args.run_dir), device=args.device)
    step = trainer.step_count
    if args.format == "grid":
        out = Path(args.out) if args.out else Path(args.run_dir) / "samples" / f"sample_{step:07d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_sample_panel(trainer, out, args.count or 64)
    else:
        name = f"export_{step:07d}" + (".npz" if args.format == "npz" else "")
        out = Path(args.out) if args.out else Path(args.run_dir) / "samples" / name
        export_samples(trainer, out, args.count or trainer.cfg.fid_samples, args.format)
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    from tempered_gan.training.loop import Interrupted, NonFiniteLoss

    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help, or a malformed option (already printed as one line)
        return exc.code
    try:
        if hasattr(args, "lens"):       # the commands with training options
            translate_deprecated(args)
        return {"train": cmd_train, "compare": cmd_compare, "sweep": cmd_sweep, "reproduce": cmd_reproduce,
                "eval": cmd_eval, "sample": cmd_sample}[args.command](args)
    except NonFiniteLoss as exc:
        print(f"tempered-gan: error: {exc}", file=sys.stderr)
        return 3
    except UserError as exc:
        for line in str(exc).splitlines():   # one line per problem (reproduce: one per missing data set)
            print(f"tempered-gan: error: {line}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        if args.command in ("compare", "sweep"):
            print(f"tempered-gan: {exc}; checkpoint saved; run the same {args.command} command again to continue",
                  file=sys.stderr)
            return 128 + exc.signum
        where = args.resume or getattr(args, "run_dir", "RUN_DIR")
        print(f"tempered-gan: {exc}; checkpoint saved; continue with: tempered-gan train --resume {where}",
              file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("tempered-gan: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except OSError as exc:
        import errno
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):   # a full disk anywhere not yet named more precisely
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"tempered-gan: error: {exc.strerror or exc}{where}; files written before are kept", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        from tempered_gan.util.distributed import collective_failure_message, is_collective_failure
        if not is_collective_failure(exc):
            raise
        print(f"tempered-gan: error: {collective_failure_message(exc)}", file=sys.stderr)
        return 1
    finally:
        locks.release_all()           # this command's folders (the process may be a test running many)
        import torch.distributed
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
