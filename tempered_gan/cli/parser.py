"""The ``tempered-gan`` argument parser: its commands, option groups and help.

Every option of :class:`~tempered_gan.config.TrainConfig` is a flag of the same
name with dashes, in one topic group (``GROUPS``). A malformed option ends with
one ``error:`` line and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses

from tempered_gan.config.presets import PRESETS
from tempered_gan.config.train_config import TrainConfig
from tempered_gan.studies.arms import ARMS
from tempered_gan.studies.reproduce import ROW_OPTIONS, ROWS

HELP = {
    "dataset": "mnist, fashion-mnist, color-mnist, color-fashion-mnist, cifar10, celeba, folder, "
               "mixture-ring8, mixture-grid25 (default: mixture-ring8, a CPU demo of about two minutes; the paper's are mnist, "
               "color-mnist, celeba and cifar10)",
    "data_dir": "folder holding the data set's files (default: the data set's usual place)",
    "resolution": "image side in pixels: 32 (default, the paper's), 64 or 128, for folder and celeba; the conv nets "
                  "gain one stride-2 stage per doubling (ours, not the paper's); classifier features only at 32",
    "skip_unreadable": "folder, celeba: leave out the files that cannot be read as images, and say how many "
                       "(default: stop, naming them)",
    "loss": "gan, lsgan or wgan-gp (default: gan)",
    "tempering": "what tempers the real data before D: none (plain training), lens (default: the learned lens), "
                 "noise (annealed instance noise on both of D's inputs, σ(t) = σ₀·λ(t)) or blur (a fixed Gaussian "
                 "blur of the real images, σ(t) = σ₀·λ(t) pixels; images only); noise and blur end at K",
    "schedule": "the λ schedule of the tempering: sine (default, the paper's: λ falls from 1 to 0 at step K) or "
                "constant (λ = --lambda-value throughout)",
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
    "r1_gamma": "R1 penalty γ: γ/2·E‖∇D(x)‖² on D's real input, a stabiliser to compare with (Mescheder et al. "
                "2018; not in the paper); default 0: none. compare and sweep give it to the r1 arm",
    "g_ema": "keep an exponential moving average of G's weights with this decay, e.g. 0.999 (StyleGAN, BigGAN), "
             "and let eval, sample and the sample grids use it; default 0: off",
    "log_every": "steps between lines of metrics.jsonl (default 100)",
    "sample_every": "steps between sample grids (default: a tenth of the run)",
    "checkpoint_every": "steps between checkpoints (default: a tenth of the run, at most 5000)",
    "eval_every": "steps between FID (and mode-coverage) evaluations; 0 (default): none",
    "fid_samples": "samples per FID (default 4096; 10000 for wgan-gp, as in the paper)",
    "fid_features": "auto (default: points for 2-D data; classifier for labelled sets at 32 px, a folder laid out "
                    "by class included; else inception), classifier (offline, trained on the data set's labels; 32 px "
                    "only), inception (the paper's; weights fetched on first use), dinov2 (DINOv2 ViT-S/14, as Stein "
                    "et al. 2023 recommend; weights fetched on first use; needs timm) or points",
    "inception_weights": "path of pt_inception-2015-12-05-6726825d.pth for paper-comparable FID (default: "
                         "$TEMPERED_GAN_INCEPTION, else torch hub's cache, fetched there on first use)",
    "dinov2_weights": "path of dinov2_vits14_pretrain.pth for --fid-features dinov2 (default: $TEMPERED_GAN_DINOV2, "
                      "else torch hub's cache, fetched there on first use)",
    "device": "auto (default), cpu, cuda or cuda:N",
    "amp": "none (default) or bf16: mixed precision for the forward passes; with --channels-last 1.5-2.4x "
           "faster on a CPU with native bf16, not shown to keep fp32's quality (docs/PERFORMANCE.md)",
    "channels_last": "channels-last memory format for the conv nets (docs/PERFORMANCE.md); default off",
    "cuda_graphs": "experimental, not yet measured on a GPU: replay each step as one captured CUDA graph "
                   "(one GPU; see docs/PERFORMANCE.md); default off",
}

# The --help of train and compare, by topic: every TrainConfig field is in exactly one group.
GROUPS = {
    "data": ["dataset", "data_dir", "resolution", "skip_unreadable"],
    "run": ["steps", "batch_size", "seed"],
    "method: the GAN and what tempers the real data": ["loss", "tempering", "schedule", "k", "lambda_value",
                                                       "noise_sigma", "blur_sigma", "reconstruction"],
    "how the lens leaves after K": ["lens_exit", "lens_exit_steps", "retire_tolerance", "retire_patience"],
    "networks": ["arch", "width", "z_dim", "lens_width", "lens_blocks", "lens_zero_init"],
    "optimiser": ["optimizer", "lr", "lens_lr", "beta1", "beta2", "critic_steps", "gp_weight", "r1_gamma", "g_ema"],
    "logging, samples and checkpoints": ["log_every", "sample_every", "checkpoint_every"],
    "evaluation": ["eval_every", "fid_samples", "fid_features", "inception_weights", "dinov2_weights"],
    "speed and device": ["device", "amp", "channels_last", "cuda_graphs"],
}
# compare sets these itself (per arm, or seeds 0 … N−1) and refuses them with one line; its help leaves them out.
COMPARE_SETS = ("seed", "schedule", "lambda_value", "tempering")
# Flags of 0.1.0 still accepted, with a one-line warning, for one release (CHANGELOG.md): what each means now.
DEPRECATED = {"lens": "--schedule sine|constant, or --tempering none for no tempering",
              "keep_lens": "--lens-exit keep"}

EPILOG = ("Defaults follow the paper (§4) for images; where a default differs from the paper, or the paper gives "
          "none, the option says so (docs/DECISIONS.md has the reasons). The 2-D mixtures use a setting that "
          "trains in about two minutes on two CPU cores.")
THREADS = ("Threads on the CPU: an image run uses every core by default. When other "
           "work keeps the cores busy (another run, a test suite, a shared machine), set OMP_NUM_THREADS=1 (or the "
           "number of cores left free): PyTorch's threads wait for each other on busy cores, and image runs were "
           "1.6-6x slower with the default (docs/PERFORMANCE.md, 'Why one thread'). The 2-D mixtures always use one "
           "thread unless OMP_NUM_THREADS is set, and compare --jobs N gives each run its share of the cores.")


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
    method = groups["method: the GAN and what tempers the real data"]
    method.add_argument("--lens", dest="lens", default=None, help=argparse.SUPPRESS)
    groups["how the lens leaves after K"].add_argument("--keep-lens", dest="keep_lens", action="store_true",
                                                       default=None, help=argparse.SUPPRESS)
    groups["logging, samples and checkpoints"].add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="progress bar (default: when stderr is a terminal; else a line per log step)")
    return groups


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tempered-gan", description="Tempered Adversarial Networks (Sajjadi et al., 2018)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(commands)
    _add_compare(commands)
    _add_sweep(commands)
    _add_reproduce(commands)
    _add_eval_and_sample(commands)
    return parser


def _add_train(commands) -> None:
    train = commands.add_parser("train", help="train a GAN, with or without a lens", epilog=f"{EPILOG} {THREADS}")
    groups = _add_config_flags(train)
    run = groups["run"]
    run.add_argument("--out", help="run folder (default: a new numbered folder under runs/)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run folder (default: refuse)")
    run.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue that run with its saved configuration "
                                                         "(default: start a new run)")


def _add_compare(commands) -> None:
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


def _add_sweep(commands) -> None:
    from tempered_gan.studies.sweep import GRID_KEYS, SUCCESS_DEFAULTS

    sweep = commands.add_parser("sweep", help="where does training work? a grid of training settings × arms × seeds, "
                                              "an absolute success rule, OUT/report.md and OUT/map.png", epilog=EPILOG)
    own = sweep.add_argument_group("sweep")
    own.add_argument("--out", required=True, help="folder of the sweep (cells/, report.md, map.png); required")
    own.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                     help=f"one axis of the grid, repeatable; KEY is one of {', '.join(GRID_KEYS)} (tempering options "
                          "belong to --arms); the cells are every combination")
    own.add_argument("--seeds", help="N: seeds 0 … N−1 (default 3); A-B; or a list 3,5,8")
    own.add_argument("--arms", help=f"comma-separated, as compare's, from {', '.join(ARMS)} (default: none,sine)")
    own.add_argument("--reference", help="the arm every other arm is compared with (default: none)")
    defaults = "; ".join(f"{name} {'≤ ' + format(fid, 'g') if fid is not None else 'none (give it)'}"
                         f"{', ≥ ' + str(modes) + ' modes' if modes else ''}" for name, (fid, modes) in SUCCESS_DEFAULTS.items())
    own.add_argument("--fail-fid", type=float, help=f"a run trains only with a final FID at most this (defaults: {defaults}; "
                                                    "other image sets: none, give it)")
    own.add_argument("--fail-modes", type=int, help="... and at least this many modes where the data set has modes "
                                                    "(defaults above)")
    own.add_argument("--map", help="the one or two grid axes of map.png, X,Y (default: the first two --grid keys)")
    own.add_argument("--jobs", type=int, default=1, help="runs trained at once, as compare --jobs (default 1)")
    own.add_argument("--shard", metavar="I/N", help="train only shard I of N of all the sweep's runs (default: all)")
    own.add_argument("--report-only", action="store_true",
                     help="train nothing: write OUT/report.md from the finished runs and list the others")
    _add_config_flags(sweep, hide=COMPARE_SETS)
    next(a for a in sweep._actions if a.dest == "eval_every").help = \
        "steps between FID evaluations (default: a tenth of --steps)"


def _add_reproduce(commands) -> None:
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
    _add_config_flags(reproduce, hide=(*ROW_OPTIONS, "dinov2_weights"))   # each row sets these itself (refused in one
    # line); reproduce measures FID with the paper's Inception features (or the classifier), never DINOv2
    next(a for a in reproduce._actions if a.dest == "fid_features").help = \
        "inception (default: the paper's features; weights fetched on first use) or classifier (not comparable)"


def _add_eval_and_sample(commands) -> None:
    for name, text in (("eval", "FID (and coverage) of a run's checkpoint, printed as one JSON object"),
                       ("sample", "write a sample grid G(Z) | L(X) | X from a run's checkpoint")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("run_dir", metavar="RUN_DIR")
        if name == "eval":
            evaluation = sub.add_argument_group("evaluation")
            evaluation.add_argument("--fid-samples", type=int, help="samples per FID (default: the run's)")
            evaluation.add_argument("--fid-features", help="auto, classifier, inception (the paper's), dinov2 or "
                                                           "points (default: the run's)")
            evaluation.add_argument("--inception-weights", help="path of pt_inception-2015-12-05-6726825d.pth "
                                                                "(default: the run's)")
            evaluation.add_argument("--dinov2-weights", help="path of dinov2_vits14_pretrain.pth (default: the run's)")
        else:
            output = sub.add_argument_group("output")
            output.add_argument("--format", choices=("grid", "png", "npz"), default="grid",
                                help="grid: one PNG of G(Z) | what D sees | X (default); png: a folder of N "
                                     "PNGs; npz: one .npz holding arr_0, uint8 (N, H, W, C) (float32 (N, 2) for 2-D "
                                     "points), for pytorch-fid, clean-fid or torch-fidelity")
            output.add_argument("--out", help="where to write (default: RUN_DIR/samples/sample_<step>.png, "
                                              "…/export_<step>/ or …/export_<step>.npz)")
            output.add_argument("--n", "--count", dest="count", type=int,
                                help="samples (default: 64 in a grid; else the run's --fid-samples, the very "
                                     "samples eval scores)")
        sub.add_argument_group("speed and device").add_argument(
            "--device", default=None, help="auto, cpu, cuda or cuda:N (default: the run's)")


def translate_deprecated(args, warn=None) -> None:
    """Rewrite the deprecated flags of :data:`DEPRECATED` on ``args`` into today's, warning once on
    stderr for each; a contradiction with today's flags is one :class:`UserError`."""
    import sys

    from tempered_gan.errors import UserError

    warn = warn or (lambda line: print(line, file=sys.stderr))
    lens, keep = getattr(args, "lens", None), getattr(args, "keep_lens", None)
    if lens is not None:
        warn(f"tempered-gan: warning: --lens is deprecated and will be removed; use {DEPRECATED['lens']}")
        if lens == "none":
            if args.tempering not in (None, "none"):
                raise UserError(f"--lens none (no tempering) contradicts --tempering {args.tempering}")
            args.tempering = "none"
        else:
            if args.schedule not in (None, lens):
                raise UserError(f"--lens {lens} contradicts --schedule {args.schedule}")
            args.schedule = lens
    if keep:
        warn(f"tempered-gan: warning: --keep-lens is deprecated and will be removed; use {DEPRECATED['keep_lens']}")
        if args.lens_exit not in (None, "keep"):
            raise UserError(f"--keep-lens keeps the lens for good; it contradicts --lens-exit {args.lens_exit}")
        args.lens_exit = "keep"
    args.lens = args.keep_lens = None


def given_options(args) -> dict:
    """The TrainConfig options given on the command line (the others are None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}


def config_from_args(args) -> TrainConfig:
    return TrainConfig(**given_options(args))
