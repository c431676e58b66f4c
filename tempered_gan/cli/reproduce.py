"""``tempered-gan reproduce``: the paper's table, each of its settings as a compare grid, then
``OUT/report.md`` beside the paper's FIDs."""
from __future__ import annotations

from pathlib import Path

from tempered_gan.cli.options import EPILOG, add_config_flags, add_grid_options, command_line, given_options, print_report
from tempered_gan.errors import UserError
from tempered_gan.studies.reproduce import ROW_OPTIONS, ROWS, parse_rows, reproduce
from tempered_gan.studies.shards import grid_options

FID_FEATURES = "inception (default: the paper's features; weights fetched on first use) or classifier (not comparable)"


def add_parser(commands) -> None:
    parser = commands.add_parser("reproduce", help="the paper's table: each of its settings as a compare grid, "
                                                   "then OUT/report.md beside the paper's FIDs", epilog=EPILOG)
    table = parser.add_argument_group("reproduction")
    table.add_argument("--out", required=True, help="folder of the reproduction (a compare folder per row); required")
    table.add_argument("--rows", help=f"comma-separated, from {', '.join(ROWS)} (default: all)")
    table.add_argument("--scale", type=float, default=1.0,
                       help="multiply steps, K and the FID interval by this, in (0, 1], for a trial run (default 1)")
    table.add_argument("--seeds", type=int, default=3, help="seeds 0 … N−1 per row (default 3, as the paper)")
    table.add_argument("--arms", help="comma-separated compare arms (default: none,sine; baselines on request)")
    add_grid_options(table, "every row's grid", "OUT/report.md")
    # Each row sets ROW_OPTIONS itself (refused in one line); reproduce measures FID with the paper's
    # Inception features (or the classifier), never DINOv2.
    add_config_flags(parser, hide=(*ROW_OPTIONS, "dinov2_weights"), helps={"fid_features": FID_FEATURES},
                     config_file=False)   # each row is the paper's configuration
    parser.set_defaults(run=run_command)


def run_command(args) -> int:
    shard = grid_options(args.jobs, args.shard, args.report_only, "table")
    overrides = given_options(args)
    features = overrides.pop("fid_features", "inception")
    if features not in ("inception", "classifier"):
        raise UserError(f"reproduce measures FID with inception (the paper's) or classifier features, not {features!r}")
    weights = overrides.pop("inception_weights", None)
    if overrides.pop("dinov2_weights", None):
        raise UserError("reproduce measures FID with inception (the paper's) or classifier features; "
                        "--dinov2-weights does not apply")
    return print_report(reproduce(parse_rows(args.rows), Path(args.out), scale=args.scale, seeds=args.seeds,
                                  arms=args.arms.split(",") if args.arms else None, shard=shard,
                                  report_only=args.report_only, fid_features=features, inception_weights=weights,
                                  overrides=overrides, jobs=args.jobs, progress=args.progress,
                                  command=command_line(args)))
