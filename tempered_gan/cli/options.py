"""What the commands share: the parser class, the run options (every field of
:class:`~tempered_gan.config.TrainConfig` as a flag of the same name with dashes, in one topic
group), the options of the commands that train a grid (``--jobs``, ``--shard``,
``--report-only``), seeds, deprecated flags and the report line.

Each default is written once, in the configuration (:func:`~tempered_gan.config.resolve`): the
help shows what it resolves to (:func:`default_text`), so the two cannot disagree.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import shlex
import sys
from pathlib import Path

from tempered_gan.config.train_config import RESOLVED, TrainConfig, migrate, read_config_file, resolve, underived
from tempered_gan.errors import UserError
from tempered_gan.util import renamed as renamed_options

# The help of each run option; "{default}" is replaced by what the configuration resolves it to.
HELP = {
    "dataset": "mnist, fashion-mnist, color-mnist, color-fashion-mnist, cifar10, celeba, folder, "
               "mixture-ring8, mixture-grid25 (default: {default}, a CPU demo of about two minutes; the paper's are "
               "mnist, color-mnist, celeba and cifar10)",
    "data_dir": "folder holding the data set's files (default: the data set's usual place)",
    "resolution": "image side in pixels (default {default}, the paper's; 64 or 128 for folder and celeba): the conv "
                  "nets gain one stride-2 stage per doubling (ours, not the paper's); classifier features only at 32",
    "skip_unreadable": "folder, celeba: leave out the files that cannot be read as images, and say how many "
                       "(default: stop, naming them)",
    "loss": "gan, lsgan or wgan-gp (default: {default})",
    "tempering": "what tempers the real data before D: none (plain training), lens (the learned lens), noise "
                 "(annealed instance noise on both of D's inputs, σ(t) = σ₀·λ(t)) or blur (a fixed Gaussian blur of "
                 "the real images, σ(t) = σ₀·λ(t) pixels; images only); noise and blur end at K (default: {default})",
    "schedule": "the λ schedule of the tempering: sine (the paper's: λ falls from 1 to 0 at step K), linear (λ = 1 − "
                "t/K, StyleGAN3's blur fade) or constant (λ = --lambda-value throughout) (default: {default})",
    "noise_sigma": "--tempering noise: σ₀ in data units (default {default}: half the [-1, 1] pixel range; on the "
                   "ring it merges neighbouring modes at t = 0)",
    "blur_sigma": "--tempering blur: σ₀ in pixels (default {default}: coarse silhouettes of a 32×32 image; kernel "
                  "radius ⌈3σ₀⌉)",
    "k": "K of the sine schedule: λ reaches 0 at step K (default: {images}, the paper's; half the steps for mixtures)",
    "lambda_value": "λ of the constant schedule (default: {default}, the paper's fixed-λ run)",
    "steps": "generator iterations in all (default: {default})",
    "batch_size": "default: {default} (the paper: 32 or 64)",
    "seed": "seeds G/D initialisation, data order and noise; the lens has a stream of its own (default {default})",
    "arch": "dcgan, lsgan, wgan-gp or mlp (default: follows --loss and --dataset: {default})",
    "width": "channel multiplier C (default {default}; the paper gives no number)",
    "z_dim": "noise dimension (default {default})",
    "lens_width": "feature maps in the lens (default {default}, the paper's)",
    "lens_blocks": "residual blocks in the lens (default {default}, the paper's)",
    "lens_zero_init": "start the lens exactly at the identity (zero last layer); default {default}, as in the paper "
                      "(Xavier everywhere)",
    "reconstruction": "‖X − L(X)‖² reduction: mean over elements or sum per sample (default: {default})",
    "lens_exit": "how a sine lens exits after K: drop (right after K; chosen by docs/results/exit-fashion/README.md), "
                 "blend (L fades linearly to the identity over --lens-exit-steps, then is dropped), converge (the "
                 "paper's: trained on ‖X − L(X)‖² until within --lens-exit-tolerance; may never end), keep (never) "
                 "(default: {default})",
    "lens_exit_steps": "blend: steps over which the lens fades out after K (default K/2, so the lens is gone by 1.5·K)",
    "lens_exit_tolerance": "--lens-exit converge: after step K the lens exits when ‖X − L(X)‖² (mean) stays below "
                           "this (default {default}) ...",
    "lens_exit_patience": "... for this many consecutive steps (default {default}); decided every min(100, this) "
                          "steps, whatever the logging, sample, evaluation and checkpoint intervals",
    "optimizer": "adam or rmsprop, for G and D (default: {default}); for wgan-gp the paper's text says RMSProp, the "
                 "code it used (Gulrajani's) Adam (docs/DECISIONS.md)",
    "lr": "learning rate (default {default}; the paper's is 1e-4)",
    "lens_lr": "lens learning rate (default: --lr)",
    "beta1": "Adam β1 (default {default}; the paper names no betas)",
    "beta2": "Adam β2 (default {default})",
    "critic_steps": "D updates per G update (default {default}; the paper's)",
    "gp_weight": "gradient-penalty weight (default {default}; the paper's)",
    "r1_gamma": "R1 penalty γ: γ/2·E‖∇D(x)‖² on D's real input, a stabiliser to compare with (Mescheder et al. "
                "2018; not in the paper); default {default}: none. compare and sweep give it to the arms with r1 (r1, sine+r1)",
    "spectral_norm": "spectral normalisation of every convolution and linear layer of D (Miyato et al. 2018; not in "
                     "the paper); default {default}",
    "diffaugment": "DiffAugment policy (Zhao et al. 2020; not in the paper): color, translation and/or cutout, "
                   "comma-separated, on both of D's inputs in D's and G's steps, after the tempering (default: none). "
                   "compare and sweep give it to the arms with diffaug",
    "blur_both": "--tempering blur: blur G(Z) as well as X, in D's and G's steps, as StyleGAN3 does (with "
                 "--schedule linear, its fade); default {default}: X only",
    "g_ema": "keep an exponential moving average of G's weights with this decay, e.g. 0.999 (StyleGAN, BigGAN), "
             "and let eval, sample and the sample grids use it; default {default}: off",
    "log_every": "steps between lines of metrics.jsonl (default {default})",
    "sample_every": "steps between sample grids (default: a tenth of the run)",
    "checkpoint_every": "steps between checkpoints (default: a tenth of the run, at most 5000)",
    "wandb": "mirror the log, evaluations, sample grids and configuration to this Weights & Biases project "
             "(pip install 'tempered-gan[wandb]'; WANDB_MODE=offline writes it under RUN_DIR/wandb; a resumed run "
             "continues its W&B run) (default: none)",
    "eval_every": "steps between FID (and mode-coverage) evaluations; default {default}: none",
    "fid_samples": "samples per FID (default {default}, as in the paper)",
    "fid_features": "auto (points for 2-D data; classifier for labelled sets at 32 px, a folder laid out by class "
                    "included; else inception), classifier (offline, trained on the data set's labels; 32 px only), "
                    "inception (the paper's; weights fetched on first use), dinov2 (DINOv2 ViT-S/14, as Stein et al. "
                    "2023 recommend; weights fetched on first use; needs timm) or points (default: {default})",
    "inception_weights": "path of pt_inception-2015-12-05-6726825d.pth for paper-comparable FID (default: "
                         "$TEMPERED_GAN_INCEPTION, else torch hub's cache, fetched there on first use)",
    "dinov2_weights": "path of dinov2_vits14_pretrain.pth for --fid-features dinov2 (default: $TEMPERED_GAN_DINOV2, "
                      "else torch hub's cache, fetched there on first use)",
    "device": "auto, cpu, cuda or cuda:N (default: {default})",
    "amp": "none or bf16: mixed precision for the forward passes; with --channels-last 1.5-2.4x faster on a CPU "
           "with native bf16, not shown to keep fp32's quality (docs/PERFORMANCE.md) (default: {default})",
    "channels_last": "channels-last memory format for the conv nets (docs/PERFORMANCE.md); default {default}",
    "cuda_graphs": "experimental, not yet measured on a GPU: replay each step as one captured CUDA graph "
                   "(one GPU; see docs/PERFORMANCE.md); default {default}",
}

# The configurations whose resolved values the help shows: images (the paper's settings), and where
# they differ the 2-D mixtures and WGAN-GP; a tempering's σ₀ from a run of that tempering.
DEFAULT_CASES = {"": {"dataset": "mnist"}, "for mixtures": {"dataset": "mixture-ring8"},
                 "for wgan-gp": {"dataset": "cifar10", "loss": "wgan-gp"}}
CASE_OF = {"noise_sigma": {"dataset": "mnist", "tempering": "noise"},
           "blur_sigma": {"dataset": "mnist", "tempering": "blur"},
           "dataset": {}}    # the unresolved default: what a bare `tempered-gan train` uses

# The --help of train and compare, by topic: every TrainConfig field is in exactly one group.
GROUPS = {
    "data": ["dataset", "data_dir", "resolution", "skip_unreadable"],
    "run": ["steps", "batch_size", "seed"],
    "method: the GAN and what tempers the real data": ["loss", "tempering", "schedule", "k", "lambda_value",
                                                       "noise_sigma", "blur_sigma", "blur_both", "reconstruction"],
    "how the lens exits after K": ["lens_exit", "lens_exit_steps", "lens_exit_tolerance", "lens_exit_patience"],
    "networks": ["arch", "width", "z_dim", "lens_width", "lens_blocks", "lens_zero_init"],
    "optimiser": ["optimizer", "lr", "lens_lr", "beta1", "beta2", "critic_steps", "gp_weight", "g_ema"],
    "what else steadies D (baselines)": ["r1_gamma", "spectral_norm", "diffaugment"],
    "logging, samples and checkpoints": ["log_every", "sample_every", "checkpoint_every", "wandb"],
    "evaluation": ["eval_every", "fid_samples", "fid_features", "inception_weights", "dinov2_weights"],
    "speed and device": ["device", "amp", "channels_last", "cuda_graphs"],
}
# compare and sweep set these themselves (per arm, or per seed) and refuse them with one line; their help leaves them out.
COMPARE_SETS = ("seed", "schedule", "lambda_value", "tempering")
# Flags of earlier releases still accepted, with a one-line warning (CHANGELOG.md): what each means now.
# (The renamed ones, such as --retire-tolerance, are in tempered_gan/util/renamed.py.)
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


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        self.exit(2, f"{self.prog}: error: {message}\n")


def _shown(value) -> str:
    return "off" if value is False else "on" if value is True else f"{value:g}" if isinstance(value, float) else str(value)


@functools.lru_cache(maxsize=None)
def resolved_default(name: str, case: str = "") -> object:
    """What option ``name`` resolves to in the configuration of ``case`` (a key of DEFAULT_CASES)."""
    given = CASE_OF.get(name, DEFAULT_CASES[case])
    cfg = TrainConfig(**given)
    return getattr(cfg if name in CASE_OF and not given else resolve(cfg), name)


def default_text(name: str) -> str:
    """``name``'s default as the help shows it: the images' value, then where it differs, the other cases'."""
    images = resolved_default(name)
    if name in CASE_OF:
        return _shown(images)
    others: dict[str, list[str]] = {}
    for case in list(DEFAULT_CASES)[1:]:
        if name in DEFAULT_CASES[case]:      # what makes the case (wgan-gp's loss) is not a default of it
            continue
        value = resolved_default(name, case)
        if value != images:
            others.setdefault(_shown(value), []).append(case.removeprefix("for "))
    return "; ".join([_shown(images), *(f"{value} for {' and '.join(cases)}" for value, cases in others.items())])


def help_of(name: str) -> str:
    return HELP[name].format(default=default_text(name), images=_shown(resolved_default(name)))


def _flag_type(field: dataclasses.Field):
    text = str(field.type)
    return int if text.startswith("int") else float if text.startswith("float") else str


def add_config_flags(parser: argparse.ArgumentParser, hide: tuple[str, ...] = (), helps: dict | None = None,
                     config_file: bool = True) -> dict:
    """The TrainConfig flags, in GROUPS, and ``--config FILE`` unless ``config_file`` is False; ``helps``
    replaces an option's help for this command. Returns the groups by title (commands add their own flags)."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    helps = helps or {}
    groups = {}
    for title, names in GROUPS.items():
        group = groups[title] = parser.add_argument_group(title)
        for name in names:
            flag = "--" + name.replace("_", "-")
            text = argparse.SUPPRESS if name in hide else helps.get(name) or help_of(name)
            if fields[name].type in ("bool", bool):
                group.add_argument(flag, action="store_true", default=None, help=text)
            else:
                group.add_argument(flag, type=_flag_type(fields[name]), default=None, help=text)
    method = groups["method: the GAN and what tempers the real data"]
    method.add_argument("--lens", dest="lens", default=None, help=argparse.SUPPRESS)
    exits = groups["how the lens exits after K"]
    exits.add_argument("--keep-lens", dest="keep_lens", action="store_true", default=None, help=argparse.SUPPRESS)
    for old, new in renamed_options.CONFIG_KEYS.items():      # accepted under their old names, with a warning
        exits.add_argument("--" + old.replace("_", "-"), dest=old, type=_flag_type(fields[new]), default=None,
                           help=argparse.SUPPRESS)
    if config_file:
        groups["run"].add_argument("--config", metavar="FILE", help="start from this configuration: a run's "
                                   "config.json, or a TOML file of the same keys; options given here override it "
                                   "(default: none)")
    groups["logging, samples and checkpoints"].add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="progress bar (default: when stderr is a terminal; else a line per log step)")
    return groups


def add_grid_options(group, runs: str, whole: str) -> None:
    """``--jobs``, ``--shard`` and ``--report-only`` of the commands that train many ``runs`` and report the ``whole``."""
    group.add_argument("--jobs", type=int, default=1,
                       help="runs trained at once, each in its own process with its own log under OUT/logs/ "
                            "(default 1); never changes what a run trains")
    group.add_argument("--shard", metavar="I/N", help=f"train only shard I of N (0 ≤ I < N) of {runs}, so that N "
                                                      "processes, on N machines, share them (default: all)")
    group.add_argument("--report-only", action="store_true",
                       help=f"train nothing: write {whole} from the finished runs and list the others")


def translate_deprecated(args, warn=None) -> None:
    """Rewrite the deprecated flags of :data:`DEPRECATED` on ``args`` into today's, warning once on
    stderr for each; a contradiction with today's flags is one :class:`UserError`."""
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
    for old, new in renamed_options.CONFIG_KEYS.items():
        value, flag, new_flag = getattr(args, old, None), renamed_options.flag(old), renamed_options.flag(new)
        if value is None:
            continue
        warn(f"tempered-gan: warning: {flag} is deprecated and will be removed; use {new_flag}")
        if getattr(args, new) not in (None, value):
            raise UserError(f"{flag} {value:g} contradicts {new_flag} {getattr(args, new):g}")
        setattr(args, new, value)
        setattr(args, old, None)
    args.lens = args.keep_lens = None


def given_options(args) -> dict:
    """The TrainConfig options given on the command line (the others are None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}


def file_options(args) -> dict:
    """The options of ``--config FILE`` (none without it), in today's names; unknown keys are one error line."""
    if not getattr(args, "config", None):
        return {}
    values = read_config_file(args.config)
    # A run's config.json (resolved: every key, as an earlier version may have written it) or a few options.
    resolved = all(values.get(key) is not None for key in RESOLVED)
    values = migrate(values, complete=resolved)
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise UserError(f"--config {args.config}: unknown configuration keys: {', '.join(unknown)}")
    return underived(values) if resolved else values


def config_from_args(args) -> TrainConfig:
    """The run's configuration: ``--config FILE``'s options, overridden by those given on the command line."""
    return TrainConfig(**{**file_options(args), **given_options(args)})


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
    return seeds   # a seed named twice is refused where every grid is checked (studies.compare.grid_configs)


def command_line(args) -> str:
    """The command as typed, for a report's "how this was produced"."""
    return "tempered-gan " + " ".join(shlex.quote(a) for a in args.argv)


def grid_run_options(args) -> dict:
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


def print_report(report: Path | None) -> int:
    """Say where the report is (None: this shard is done, others are not); the commands' exit status 0."""
    if report is not None:
        print(f"report: {report}", file=sys.stderr)
    return 0
