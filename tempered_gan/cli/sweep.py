"""``tempered-gan sweep``: where does training work? A grid of training settings × arms × seeds, an
absolute success rule, ``OUT/report.md`` and ``OUT/map.png``."""
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
from tempered_gan.config.train_config import TrainConfig
from tempered_gan.errors import UserError
from tempered_gan.studies.arms import ARMS, parse_arms
from tempered_gan.studies.shards import grid_options
from tempered_gan.studies.success import SUCCESS_DEFAULTS
from tempered_gan.studies.sweep import GRID_KEYS, parse_grid, sweep


def add_parser(commands) -> None:
    parser = commands.add_parser("sweep", help="where does training work? a grid of training settings × arms × "
                                               "seeds, an absolute success rule, OUT/report.md and OUT/map.png",
                                 epilog=EPILOG)
    own = parser.add_argument_group("sweep")
    own.add_argument("--out", required=True, help="folder of the sweep (cells/, report.md, map.png); required")
    own.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                     help=f"one axis of the grid, repeatable; KEY is one of {', '.join(GRID_KEYS)} (tempering options "
                          "belong to --arms); the cells are every combination")
    own.add_argument("--seeds", help="N: seeds 0 … N−1 (default 3); A-B; or a list 3,5,8")
    own.add_argument("--arms", help=f"comma-separated, as compare's, from {', '.join(ARMS)} (default: none,sine)")
    own.add_argument("--reference", help="the arm every other arm is compared with (default: none)")
    defaults = "; ".join(f"{name} {'≤ ' + format(fid, 'g') if fid is not None else 'none (give it)'}"
                         f"{', ≥ ' + str(modes) + ' modes' if modes else ''}" for name, (fid, modes) in SUCCESS_DEFAULTS.items())
    own.add_argument("--fail-fid", type=float, help=f"a run trains only with a final FID at most this (defaults: "
                                                    f"{defaults}; other image sets: none, give it)")
    own.add_argument("--fail-modes", type=int, help="... and at least this many modes where the data set has modes "
                                                    "(defaults above)")
    own.add_argument("--map", help="the one or two grid axes of map.png, X,Y (default: the first two --grid keys)")
    add_grid_options(own, "all the sweep's runs", "OUT/report.md")
    add_config_flags(parser, hide=COMPARE_SETS,
                     helps={"eval_every": "steps between FID evaluations (default: a tenth of --steps)"})
    parser.set_defaults(run=run_command)


def run_command(args) -> int:
    axes = parse_grid(args.grid or [])
    seeds = parse_seeds(args.seeds if args.seeds is not None else "3")
    arms = parse_arms(args.arms or "none,sine")
    shard = grid_options(args.jobs, args.shard, args.report_only, "sweep")
    given = grid_run_options(args)
    fixed = sorted(set(given) & set(axes))
    if fixed:
        raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in fixed)} is an axis of the grid; "
                        "give its values in --grid only")
    base = TrainConfig(**{**file_options(args), **given})
    return print_report(sweep(base, axes, arms, seeds, Path(args.out), command=command_line(args),
                              fail_fid=args.fail_fid, fail_modes=args.fail_modes, reference=args.reference,
                              map_axes=args.map.split(",") if args.map else None, progress=args.progress,
                              jobs=args.jobs, shard=shard, report_only=args.report_only))
