"""``tempered-gan`` command line: ``train`` (new run, or ``--resume RUN_DIR``).

Every option of :class:`~tempered_gan.config.TrainConfig` is a flag of the same
name with dashes. Bad input ends with one ``error:`` line and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import signal
import sys
from pathlib import Path

from . import runlock
from .checkpoint import CHECKPOINT, atomic_write_bytes, load_checkpoint
from .config import CONFIG, RESUME_OPTIONS, TrainConfig, resolve
from .errors import UserError, WriteError

HELP = {
    "dataset": "mnist, fashion-mnist, color-mnist, color-fashion-mnist, cifar10, celeba, folder, "
               "mixture-ring8, mixture-grid25 (default: mixture-ring8, a CPU demo of about two minutes; the paper's are mnist, "
               "color-mnist, celeba and cifar10)",
    "data_dir": "folder holding the data set's files (default: the data set's usual place)",
    "loss": "gan, lsgan or wgan-gp (default: gan)",
    "lens": "λ schedule: sine, constant or none (no lens at all; default: sine)",
    "tempering": "what tempers the real data before D, on the --lens schedule: lens (default: the learned lens), "
                 "noise (annealed instance noise on both of D's inputs, σ(t) = σ₀·λ(t)) or blur (a fixed Gaussian "
                 "blur of the real images, σ(t) = σ₀·λ(t) pixels; images only); noise and blur end at K",
    "noise_sigma": "--tempering noise: σ₀ in data units (default 1: half the [-1, 1] pixel range; on the ring it "
                   "merges neighbouring modes at t = 0)",
    "blur_sigma": "--tempering blur: σ₀ in pixels (default 2: coarse silhouettes of a 32×32 image; kernel radius ⌈3σ₀⌉)",
    "k": "K of the sine schedule: λ reaches 0 at step K (default: 10000, the paper's; half the steps for mixtures)",
    "lambda_value": "λ of the constant schedule (default: 1, the paper's fixed-λ run)",
    "steps": "generator iterations in all (default: 50000; 4000 for mixtures)",
    "batch_size": "default: 64 (the paper: 32 or 64; 256 for mixtures)",
    "seed": "seeds G/D initialisation, data order and noise; the lens has a stream of its own (default 0)",
    "arch": "dcgan, lsgan, wgan-gp or mlp (default: follows --loss and --dataset)",
    "width": "channel multiplier C (default 64; 128 for wgan-gp and the mlp; the paper gives no number)",
    "z_dim": "noise dimension (default 100; 128 for wgan-gp; 2 for mixtures)",
    "lens_width": "feature maps in the lens (default 32, the paper's)",
    "lens_blocks": "residual blocks in the lens (default 8, the paper's)",
    "lens_zero_init": "start the lens exactly at the identity (zero last layer); default off, as in the paper "
                      "(Xavier everywhere)",
    "reconstruction": "‖X − L(X)‖² reduction: mean over elements (default) or sum per sample",
    "lens_exit": "how a sine lens leaves after K: drop (default: right after K; chosen by the comparison in "
                 "docs/RESULTS.md), blend (L fades linearly to the identity over --lens-exit-steps, then is dropped), "
                 "converge (the paper's: trained on ‖X − L(X)‖² until within --retire-tolerance; may never end), "
                 "keep (never)",
    "lens_exit_steps": "blend: steps over which the lens fades out after K (default K/2, so the lens is gone by 1.5·K)",
    "keep_lens": "never retire the lens (the same as --lens-exit keep); default off",
    "retire_tolerance": "--lens-exit converge: after step K the lens retires when ‖X − L(X)‖² (mean) stays below "
                        "this (default 1e-4) ...",
    "retire_patience": "... for this many consecutive steps (default 1000); decided every min(100, this) steps, "
                       "whatever the logging, sample, evaluation and checkpoint intervals",
    "optimizer": "adam (default) or rmsprop, for G and D; for wgan-gp the paper's text says RMSProp, the code it "
                 "used (Gulrajani's) Adam (docs/DECISIONS.md)",
    "lr": "learning rate (default 1e-4, the paper's; 1e-3 for mixtures)",
    "lens_lr": "lens learning rate (default: --lr)",
    "beta1": "Adam β1 (default 0.5; the paper names no betas)",
    "beta2": "Adam β2 (default 0.999; 0.9 for wgan-gp)",
    "critic_steps": "D updates per G update (default 1; 5 for wgan-gp, the paper's)",
    "gp_weight": "gradient-penalty weight (default 10 for wgan-gp, the paper's, else 0)",
    "log_every": "steps between lines of metrics.jsonl (default 100)",
    "sample_every": "steps between sample grids (default: a tenth of the run)",
    "checkpoint_every": "steps between checkpoints (default: a tenth of the run, at most 5000)",
    "eval_every": "steps between FID (and mode-coverage) evaluations; 0 (default): none",
    "fid_samples": "samples per FID (default 4096; 10000 for wgan-gp, as in the paper)",
    "fid_features": "auto (default: points for 2-D data, else classifier), classifier, inception (the paper's; "
                    "weights fetched on first use) or points",
    "inception_weights": "path of pt_inception-2015-12-05-6726825d.pth for paper-comparable FID (default: "
                         "$TEMPERED_GAN_INCEPTION, else torch hub's cache, fetched there on first use)",
    "device": "auto (default), cpu, cuda or cuda:N",
    "amp": "none (default) or bf16: mixed precision for the forward passes (GPU; see docs/PERFORMANCE.md "
           "for what it gains)",
    "channels_last": "channels-last memory format for the conv nets (GPU; see docs/PERFORMANCE.md); default off",
    "cuda_graphs": "experimental, not yet measured on a GPU: replay each step as one captured CUDA graph "
                   "(one GPU; see docs/PERFORMANCE.md); default off",
}

# The --help of train and compare, by topic: every TrainConfig field is in exactly one group.
GROUPS = {
    "data": ["dataset", "data_dir"],
    "run": ["steps", "batch_size", "seed"],
    "method: the GAN and what tempers the real data": ["loss", "lens", "tempering", "k", "lambda_value",
                                                       "noise_sigma", "blur_sigma", "reconstruction"],
    "how the lens leaves after K": ["lens_exit", "lens_exit_steps", "keep_lens", "retire_tolerance",
                                    "retire_patience"],
    "networks": ["arch", "width", "z_dim", "lens_width", "lens_blocks", "lens_zero_init"],
    "optimiser": ["optimizer", "lr", "lens_lr", "beta1", "beta2", "critic_steps", "gp_weight"],
    "logging, samples and checkpoints": ["log_every", "sample_every", "checkpoint_every"],
    "evaluation": ["eval_every", "fid_samples", "fid_features", "inception_weights"],
    "speed and device": ["device", "amp", "channels_last", "cuda_graphs"],
}
# compare sets these itself (per arm, or seeds 0 … N−1) and refuses them with one line; its help leaves them out.
COMPARE_SETS = ("seed", "lens", "lambda_value", "tempering")

EPILOG = ("Defaults follow the paper (§4) for images; where a default differs from the paper, or the paper gives "
          "none, the option says so (docs/DECISIONS.md has the reasons). The 2-D mixtures use a setting that "
          "trains in about two minutes on two CPU cores.")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        self.exit(2, f"{self.prog}: error: {message}\n")


def _flag_type(field: dataclasses.Field):
    text = str(field.type)
    return int if text.startswith("int") else float if text.startswith("float") else str


def _add_config_flags(parser: argparse.ArgumentParser, hide: tuple[str, ...] = ()) -> dict:
    """The TrainConfig flags, in GROUPS; returns the groups by title (commands add their own flags to them)."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    groups = {}
    for title, names in GROUPS.items():
        group = groups[title] = parser.add_argument_group(title)
        for name in names:
            flag, text = "--" + name.replace("_", "-"), argparse.SUPPRESS if name in hide else HELP[name]
            if fields[name].type in ("bool", bool):
                group.add_argument(flag, action="store_true", default=None, help=text)
            else:
                group.add_argument(flag, type=_flag_type(fields[name]), default=None, help=text)
    groups["logging, samples and checkpoints"].add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="progress bar (default: when stderr is a terminal; else a line per log step)")
    return groups


def build_parser() -> argparse.ArgumentParser:
    from .experiment import ARMS, PRESETS

    parser = _Parser(prog="tempered-gan", description="Tempered Adversarial Networks (Sajjadi et al., 2018)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser("train", help="train a GAN, with or without a lens", epilog=EPILOG)
    groups = _add_config_flags(train)
    run = groups["run"]
    run.add_argument("--out", help="run folder (default: a new numbered folder under runs/)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run folder (default: refuse)")
    run.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue that run with its saved configuration "
                                                         "(default: start a new run)")

    compare = commands.add_parser("compare", help="the paper's protocol: arms × seeds from identical initial weights, "
                                                  "then OUT/report.md", epilog=EPILOG)
    both = compare.add_argument_group("comparison")
    both.add_argument("--out", required=True, help="folder of the comparison (runs/ and report.md); required")
    both.add_argument("--preset", choices=sorted(PRESETS), help="the paper's settings, or cpu-ring8 for a CPU demo; "
                                                                "other options override it (default: none)")
    both.add_argument("--seeds", help="N: seeds 0 … N−1 (default 3); A-B: seeds A … B; or a list 3,5,8 "
                                      "(keep the seeds used for tuning apart from those of the verdict)")
    both.add_argument("--arms", help=f"comma-separated, from {', '.join(ARMS)} (default: none,sine); a variant "
                                     "adds options after colons, e.g. sine:k=600, noise:noise_sigma=0.5, "
                                     "sine:k=600:lens_lr=2e-4, and is an arm of its own")
    both.add_argument("--reference", help="the arm every other arm is compared with seed by seed "
                                          "(default: none, the arm without tempering; else the first arm)")
    both.add_argument("--fail-factor", type=float, default=2.0,
                      help="a run failed if its final FID exceeds this × the best FID of any run (at least 1; default 2)")
    both.add_argument("--fail-fid", type=float, help="a run failed if its final FID exceeds this (overrides "
                                                     "--fail-factor; default: none)")
    both.add_argument("--fail-modes", type=int, help="a run also failed if it covers fewer modes than this at "
                                                     "the end (data sets with modes: the 2-D mixtures, color sets; "
                                                     "default: none)")
    both.add_argument("--jobs", type=int, default=1,
                      help="runs trained at once, each in its own process with its own log under OUT/logs/ "
                           "(default 1); never changes what a run trains")
    _add_config_flags(compare, hide=COMPARE_SETS)
    next(a for a in compare._actions if a.dest == "eval_every").help = \
        "steps between FID evaluations (default: a tenth of --steps, i.e. ten per run)"
    both.add_argument("--shard", metavar="I/N", help="train only shard I of N (0 ≤ I < N) of the arm × seed runs, "
                                                     "so that N processes, on N machines, share the grid (default: all)")
    both.add_argument("--report-only", action="store_true",
                      help="train nothing: write OUT/report.md from the finished runs and list the others")

    from .reproduce import ROW_OPTIONS, ROWS
    reproduce = commands.add_parser("reproduce", help="the paper's table: each of its settings as a compare grid, "
                                                      "then OUT/report.md beside the paper's FIDs", epilog=EPILOG)
    table = reproduce.add_argument_group("reproduction")
    table.add_argument("--out", required=True, help="folder of the reproduction (a compare folder per row); required")
    table.add_argument("--rows", help=f"comma-separated, from {', '.join(ROWS)} (default: all)")
    table.add_argument("--scale", type=float, default=1.0,
                       help="multiply steps, K and the FID interval by this, in (0, 1], for a trial run (default 1)")
    table.add_argument("--seeds", type=int, default=3, help="seeds 0 … N−1 per row (default 3, as the paper)")
    table.add_argument("--arms", help="comma-separated compare arms (default: none,sine; baselines on request)")
    table.add_argument("--jobs", type=int, default=1, help="runs trained at once (as compare --jobs; default 1)")
    table.add_argument("--shard", metavar="I/N", help="train only shard I of N (0 ≤ I < N) of every row's grid "
                                                      "(default: all)")
    table.add_argument("--report-only", action="store_true", help="train nothing: write OUT/report.md from the "
                                                                  "finished runs")
    _add_config_flags(reproduce, hide=ROW_OPTIONS)   # each row sets these itself (refused in one line)
    next(a for a in reproduce._actions if a.dest == "fid_features").help = \
        "inception (default: the paper's features; weights fetched on first use) or classifier (not comparable)"

    for name, text in (("eval", "FID (and coverage) of a run's checkpoint, printed as one JSON object"),
                       ("sample", "write a sample grid G(Z) | L(X) | X from a run's checkpoint")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("run_dir", metavar="RUN_DIR")
        if name == "eval":
            evaluation = sub.add_argument_group("evaluation")
            evaluation.add_argument("--fid-samples", type=int, help="samples per FID (default: the run's)")
            evaluation.add_argument("--fid-features", help="auto, classifier, inception (the paper's) or points "
                                                           "(default: the run's)")
            evaluation.add_argument("--inception-weights", help="path of pt_inception-2015-12-05-6726825d.pth "
                                                                "(default: the run's)")
        else:
            output = sub.add_argument_group("output")
            output.add_argument("--out", help="PNG to write (default: RUN_DIR/samples/sample_<step>.png)")
            output.add_argument("--count", type=int, default=64, help="samples in the grid (default 64)")
        sub.add_argument_group("speed and device").add_argument(
            "--device", default=None, help="auto, cpu, cuda or cuda:N (default: the run's)")
    return parser


def _given_options(args) -> dict:
    """The TrainConfig options given on the command line (the others are None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}


def _config_from_args(args) -> TrainConfig:
    return TrainConfig(**_given_options(args))


def _new_run_dir(cfg: TrainConfig, root: Path = Path("runs")) -> Path:
    taken = [int(p.name[:5]) for p in root.glob("[0-9][0-9][0-9][0-9][0-9]-*")] if root.exists() else []
    kind = "" if cfg.tempering == "lens" else f"-{cfg.tempering}"
    return root / f"{max(taken, default=-1) + 1:05d}-{cfg.dataset}-{cfg.loss}-{cfg.lens}{kind}-s{cfg.seed}"


def _check_run_dir(path: Path, overwrite: bool, probe: bool = True) -> bool:
    """May a new run go into ``path``? Returns whether an old run must be removed.
    With ``probe``, a folder another process holds is refused first (naming it)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a folder")
    if probe:
        runlock.check_free(path)
    if path.exists() and runlock.entries(path):
        if not overwrite:
            raise UserError(f"{path} already holds a run; pass --overwrite to replace it or --resume {path} to continue it")
        if not (path / CONFIG).exists():
            raise UserError(f"{path} is not a tempered-gan run folder (no {CONFIG}); refusing to overwrite it")
        return True
    return False


def _on_main(dist, action) -> None:
    """Run ``action`` on rank 0 alone (e.g. take the run folder's lock: one holder
    per run, whatever the number of processes); when it fails, every process
    raises its error, so none waits at a collective for a rank that has left."""
    error = None
    if dist.main:
        try:
            action()
        except UserError as exc:
            error = str(exc)
    if dist.active:
        import torch.distributed
        box = [error]
        torch.distributed.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise UserError(error if dist.main else f"process 0 stopped: {error}")


def _take_new_run_dir(path: Path, overwrite: bool) -> None:
    runlock.acquire(path)
    _check_run_dir(path, overwrite)      # again, now that no other process can start a run here


def _barrier(dist) -> None:
    if dist.active:
        import torch.distributed
        torch.distributed.barrier()


def load_data(cfg: TrainConfig):
    from .data import load_dataset
    return load_dataset(cfg.dataset, cfg.data_dir)


def cmd_train(args) -> int:
    from .distributed import init_from_env
    from .train import preflight

    if args.resume:
        return _resume(args)
    cfg = resolve(_config_from_args(args))
    if args.dry_run:
        print(cfg.to_json())
        return 0
    dist = init_from_env()              # torchrun: every process runs this command
    data = load_data(cfg)               # bad input fails before any folder is touched
    preflight(cfg, data, dist)
    run_dir = args.run_dir = Path(args.out) if args.out else _new_run_dir(cfg)
    remove_old = _check_run_dir(run_dir, args.overwrite, probe=dist.main)
    _on_main(dist, lambda: _take_new_run_dir(run_dir, args.overwrite))   # held until this process ends
    _barrier(dist)                      # every process has checked before rank 0 changes anything
    if dist.main:
        if remove_old:
            runlock.clear(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / CONFIG, cfg.to_json().encode())
        print(f"run folder: {run_dir}" + (f" ({dist.world} processes)" if dist.active else ""), file=sys.stderr)
    _barrier(dist)
    _train_and_summarise(cfg, data, run_dir, None, args.progress, dist)
    return 0


def _resume(args) -> int:
    from .distributed import init_from_env
    from .runlog import METRICS, read_metric_lines
    from .train import preflight

    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise UserError(f"--resume {run_dir}: no such run folder")
    extra = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name) is not None and f.name not in RESUME_OPTIONS]
    extra += [flag for flag, given in (("--out", args.out), ("--overwrite", args.overwrite)) if given]
    if extra:
        raise UserError(f"--resume continues the saved configuration; it takes only --steps, --device, the speed, "
                        f"logging and evaluation options, not {', '.join(extra)}")
    saved = TrainConfig.load(run_dir / CONFIG)
    state = load_checkpoint(run_dir / CHECKPOINT)
    if (run_dir / METRICS).exists():
        read_metric_lines(run_dir / METRICS, warn=False)   # a damaged log fails here, before anything is rewritten
    try:
        ckpt_cfg = TrainConfig.from_dict(state["config"])
    except (KeyError, TypeError, UserError):
        raise UserError(f"{run_dir / CHECKPOINT} holds no usable configuration") from None
    differing = [f.name for f in dataclasses.fields(TrainConfig)
                 if f.name not in RESUME_OPTIONS and getattr(saved, f.name) != getattr(ckpt_cfg, f.name)]
    if differing:
        raise UserError(f"{run_dir}: {CONFIG} and {CHECKPOINT} disagree on {', '.join(differing)}; "
                        "the folder mixes two incompatible runs")
    cfg = resolve(dataclasses.replace(saved, **{k: getattr(args, k) for k in RESUME_OPTIONS
                                                if getattr(args, k) is not None}))
    if state["step"] >= cfg.steps:
        print(f"{run_dir} is already at step {state['step']} (asked for {cfg.steps}); nothing to do", file=sys.stderr)
        return 0
    dist = init_from_env()
    _on_main(dist, lambda: runlock.acquire(run_dir))   # one process per run; held until this process ends
    data = load_data(cfg)
    preflight(cfg, data, dist)
    _barrier(dist)                      # every process has read the folder before rank 0 rewrites its config
    if dist.main:
        try:
            atomic_write_bytes(run_dir / CONFIG, cfg.to_json().encode())
        except WriteError as exc:
            raise UserError(f"{exc}; nothing changed, the last good checkpoint, step {state['step']}, is kept in "
                            f"{run_dir / CHECKPOINT}") from None
        print(f"resuming {run_dir} at step {state['step']} of {cfg.steps}", file=sys.stderr)
    _train_and_summarise(cfg, data, run_dir, state["step"], args.progress, dist)
    return 0


def _one_thread_for_tiny_nets(cfg: TrainConfig) -> None:
    """The MLP nets of the 2-D mixtures gain nothing from several CPU threads, and on busy cores
    spin-waiting threads made the default demo ten times slower (measured under load: 9 min 35 s
    against 59 s with one thread, the same numbers; docs/DECISIONS.md). One thread for them on the CPU, unless
    OMP_NUM_THREADS says otherwise; compare --jobs gives each run its share of the cores anyway."""
    import os

    import torch

    from .train import pick_device

    if cfg.arch == "mlp" and pick_device(cfg.device).type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def _train_and_summarise(cfg: TrainConfig, data, run_dir: Path, resume_step: int | None, progress, dist) -> None:
    """Train (a new run, or resume at ``resume_step``), then end with one line
    for people (:func:`~tempered_gan.summary.run_summary`); metrics.jsonl holds the numbers."""
    import time

    from .summary import run_summary
    from .train import train

    _one_thread_for_tiny_nets(cfg)
    start = time.perf_counter()
    train(cfg, data, run_dir, resume=resume_step is not None, progress=progress, dist=dist)
    if dist.main:
        print(run_summary(run_dir, cfg, first_step=resume_step or 0, seconds=time.perf_counter() - start),
              file=sys.stderr)


def cmd_compare(args) -> int:
    from .experiment import PRESETS, compare, parse_arms

    preset = dict(PRESETS[args.preset]) if args.preset else {}
    # A preset holds TrainConfig fields plus these options of compare itself.
    seeds, arms, fail_fid = (preset.pop(k, default) for k, default in (("seeds", 3), ("arms", "none,sine"), ("fail_fid", None)))
    seeds = parse_seeds(args.seeds if args.seeds is not None else str(seeds))
    arms = parse_arms(args.arms or arms)
    fail_fid = args.fail_fid if args.fail_fid is not None else fail_fid
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    if args.seed is not None:
        raise UserError("compare runs several seeds; choose them with --seeds N, A-B or a list")
    if args.eval_every == 0:
        raise UserError("compare needs FID during training: --eval-every must be at least 1 "
                        "(leave it out for ten evaluations per run)")
    given = _given_options(args)
    if {"lens", "lambda_value", "tempering"} & set(given):
        raise UserError("compare sets the lens per arm; choose arms with --arms none,sine,constant,noise,blur")
    from .grid import parse_shard
    shard = parse_shard(args.shard) if args.shard is not None else None
    if shard is not None and args.report_only:
        raise UserError("--report-only reports the whole grid; it takes no --shard")
    base = TrainConfig(**{**preset, **given})
    command = "tempered-gan " + " ".join(shlex.quote(a) for a in args.argv)
    report = compare(base, arms, seeds, Path(args.out), command=command, fail_factor=args.fail_factor,
                     fail_fid=fail_fid, fail_modes=args.fail_modes, reference=args.reference,
                     progress=args.progress, jobs=args.jobs, shard=shard, report_only=args.report_only)
    if report is not None:
        print(f"report: {report}", file=sys.stderr)
    return 0


def cmd_reproduce(args) -> int:
    from .grid import parse_shard
    from .reproduce import parse_rows, reproduce

    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    shard = parse_shard(args.shard) if args.shard is not None else None
    if shard is not None and args.report_only:
        raise UserError("--report-only reports the whole table; it takes no --shard")
    overrides = _given_options(args)
    features = overrides.pop("fid_features", "inception")
    if features not in ("inception", "classifier"):
        raise UserError(f"reproduce measures FID with inception (the paper's) or classifier features, not {features!r}")
    weights = overrides.pop("inception_weights", None)
    command = "tempered-gan " + " ".join(shlex.quote(a) for a in args.argv)
    report = reproduce(parse_rows(args.rows), Path(args.out), scale=args.scale, seeds=args.seeds,
                       arms=args.arms.split(",") if args.arms else None, shard=shard, report_only=args.report_only,
                       fid_features=features, inception_weights=weights, overrides=overrides, jobs=args.jobs,
                       progress=args.progress, command=command)
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
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text} names a seed twice")
    return seeds


def cmd_eval(args) -> int:
    from .train import evaluate_run, load_run

    trainer = load_run(Path(args.run_dir), device=args.device)
    options = {k: getattr(args, k) for k in ("fid_samples", "fid_features", "inception_weights") if getattr(args, k)}
    trainer.cfg = resolve(dataclasses.replace(trainer.cfg, **options))
    print(json.dumps({"step": trainer.step_count, **evaluate_run(trainer)}))
    return 0


def cmd_sample(args) -> int:
    from .train import load_run, write_sample_panel

    if args.count < 1:
        raise UserError(f"--count must be at least 1, got {args.count}")
    trainer = load_run(Path(args.run_dir), device=args.device)
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples" / f"sample_{trainer.step_count:07d}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_sample_panel(trainer, out, args.count)
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .train import Interrupted, NonFiniteLoss

    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help, or a malformed option (already printed as one line)
        return exc.code
    try:
        return {"train": cmd_train, "compare": cmd_compare, "reproduce": cmd_reproduce, "eval": cmd_eval,
                "sample": cmd_sample}[args.command](args)
    except NonFiniteLoss as exc:
        print(f"tempered-gan: error: {exc}", file=sys.stderr)
        return 3
    except UserError as exc:
        for line in str(exc).splitlines():   # one line per problem (reproduce: one per missing data set)
            print(f"tempered-gan: error: {line}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        if args.command == "compare":
            print(f"tempered-gan: {exc}; checkpoint saved; run the same compare command again to continue",
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
        from .distributed import TIMEOUT_ENV, collective_timeout, is_collective_failure
        if not is_collective_failure(exc):
            raise
        import torch.distributed
        detail = re.sub(r"^\[[^\]]*\]\s*", "", (str(exc).strip() or type(exc).__name__).splitlines()[0])
        detail = detail.split(". ")[0].rstrip(".")      # gloo: "[file.cc:78] Timed out waiting 2000ms for ..."
        print(f"tempered-gan: error: process {torch.distributed.get_rank()} of {torch.distributed.get_world_size()}: "
              f"a collective operation failed ({detail}); another process has stopped or is stuck "
              f"(timeout {collective_timeout():g} s, {TIMEOUT_ENV}); the last checkpoint is kept", file=sys.stderr)
        return 1
    finally:
        runlock.release_all()           # this command's folders (the process may be a test running many)
        import torch.distributed
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
