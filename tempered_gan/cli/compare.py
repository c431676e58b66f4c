"""``tempered-gan compare``: the paper's protocol, arms × seeds from identical initial weights, then
``OUT/report.md``."""
from __future__ import annotations

from pathlib import Path

from tempered_gan.cli.options import (
    COMPARE_SETS,
    EPILOG,
    add_config_flags,
    add_grid_options,
    command_line,
    file_options,
    grid_run_options,
    parse_seeds,
    print_report,
)
from tempered_gan.config.presets import PRESETS, preset
from tempered_gan.config.train_config import TrainConfig
from tempered_gan.studies.arms import ARMS, parse_arms
from tempered_gan.studies.compare import compare
from tempered_gan.studies.shards import grid_options

EVAL_EVERY = "steps between FID evaluations (default: a tenth of --steps, i.e. ten per run)"


def add_parser(commands) -> None:
    parser = commands.add_parser("compare", help="the paper's protocol: arms × seeds from identical initial weights, "
                                                 "then OUT/report.md", epilog=EPILOG)
    own = parser.add_argument_group("comparison")
    own.add_argument("--out", required=True, help="folder of the comparison (runs/ and report.md); required")
    own.add_argument("--preset", choices=sorted(PRESETS), help="the paper's settings, or cpu-ring8 for a CPU demo; "
                                                               "other options override it (default: none)")
    own.add_argument("--seeds", help="N: seeds 0 … N−1 (default 3); A-B: seeds A … B; or a list 3,5,8 "
                                     "(keep the seeds used for tuning apart from those of the verdict)")
    own.add_argument("--arms", help=f"comma-separated, from {', '.join(ARMS)} (default: none,sine); a variant "
                                    "adds options after colons, e.g. sine:k=600, noise:noise_sigma=0.5, "
                                    "sine:k=600:lens_lr=2e-4, sine:r1_gamma=10 (the lens with R1), and is an arm of "
                                    "its own")
    own.add_argument("--reference", help="the arm every other arm is compared with seed by seed "
                                         "(default: none, the arm without tempering; else the first arm)")
    own.add_argument("--fail-factor", type=float, default=2.0,
                     help="a run failed if its final FID exceeds this × the best FID of any run (at least 1; default 2)")
    own.add_argument("--fail-fid", type=float, help="a run failed if its final FID exceeds this (overrides "
                                                    "--fail-factor; default: none)")
    own.add_argument("--fail-modes", type=int, help="a run also failed if it covers fewer modes than this at "
                                                    "the end (data sets with modes: the 2-D mixtures, color sets; "
                                                    "default: none)")
    add_grid_options(own, "the arm × seed runs", "OUT/report.md")
    add_config_flags(parser, hide=COMPARE_SETS, helps={"eval_every": EVAL_EVERY})
    parser.set_defaults(run=run_command)


def run_command(args) -> int:
    chosen = preset(args.preset)
    seeds = parse_seeds(args.seeds if args.seeds is not None else str(chosen.seeds))
    arms = parse_arms(args.arms or chosen.arms)
    fail_fid = args.fail_fid if args.fail_fid is not None else chosen.fail_fid
    shard = grid_options(args.jobs, args.shard, args.report_only, "grid")
    base = TrainConfig(**{**chosen.options, **file_options(args), **grid_run_options(args)})
    return print_report(compare(base, arms, seeds, Path(args.out), command=command_line(args),
                                fail_factor=args.fail_factor, fail_fid=fail_fid, fail_modes=args.fail_modes,
                                reference=args.reference, progress=args.progress, jobs=args.jobs, shard=shard,
                                report_only=args.report_only))
