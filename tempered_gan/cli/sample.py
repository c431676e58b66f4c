"""``tempered-gan sample RUN_DIR``: a sample grid G(Z) | what D sees | X, or the samples themselves
as PNG files or one ``.npz``, from a run's checkpoint."""
from __future__ import annotations

from pathlib import Path

from tempered_gan.cli.eval import add_device
from tempered_gan.errors import UserError
from tempered_gan.training.snapshots import EXPORT_FORMATS, GRID_SAMPLES, export_samples, load_run, write_sample_panel


def add_parser(commands) -> None:
    parser = commands.add_parser("sample", help="write a sample grid G(Z) | L(X) | X from a run's checkpoint")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    output = parser.add_argument_group("output")
    output.add_argument("--format", choices=EXPORT_FORMATS, default="grid",
                        help="grid: one PNG of G(Z) | what D sees | X (default); png: a folder of N PNGs; npz: one "
                             ".npz holding arr_0, uint8 (N, H, W, C) (float32 (N, 2) for 2-D points), for "
                             "pytorch-fid, clean-fid or torch-fidelity")
    output.add_argument("--out", help="where to write (default: RUN_DIR/samples/sample_<step>.png, "
                                      "…/export_<step>/ or …/export_<step>.npz)")
    output.add_argument("--n", "--count", dest="count", type=int,
                        help=f"samples (default: {GRID_SAMPLES} in a grid; else the run's --fid-samples, the very "
                             "samples eval scores)")
    add_device(parser)
    parser.set_defaults(run=run_command)


def run_command(args) -> int:
    if args.count is not None and args.count < 1:
        raise UserError(f"--n must be at least 1, got {args.count}")
    trainer = load_run(Path(args.run_dir), device=args.device)
    step = trainer.step_count
    if args.format == "grid":
        out = Path(args.out) if args.out else Path(args.run_dir) / "samples" / f"sample_{step:07d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_sample_panel(trainer, out, args.count or GRID_SAMPLES)
    else:
        name = f"export_{step:07d}" + (".npz" if args.format == "npz" else "")
        out = Path(args.out) if args.out else Path(args.run_dir) / "samples" / name
        export_samples(trainer, out, args.count or trainer.cfg.fid_samples, args.format)
    print(out)
    return 0
