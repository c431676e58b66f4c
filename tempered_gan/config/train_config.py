"""A run's configuration: one flat dataclass, resolved from presets, saved as JSON.

Fields left ``None`` are filled by :func:`resolve` from the preset of the data
set and loss (the paper's settings for images, a fast setting for the 2-D
mixtures): every default is written once, there or as the field's value, and the
command line's help shows what it resolves to (tempered_gan/cli/options.py). The
resolved configuration is what ``config.json`` holds and what ``--dry-run`` prints;
an unknown key in a saved configuration is an error.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from tempered_gan.data.registry import DATASET_NAMES, IMAGE_SIDES, dataset_kind
from tempered_gan.errors import UserError
from tempered_gan.method.augment import parse_policy
from tempered_gan.method.lens import SCHEDULES
from tempered_gan.method.losses import OBJECTIVES
from tempered_gan.method.nets import ARCHITECTURES
from tempered_gan.method.tempering import check_sigma
from tempered_gan.util.renamed import CONFIG_KEYS, renamed

CONFIG = "config.json"   # the resolved configuration in a run folder

# Options that may change on resume without changing the run itself.
# Speed options (device, amp, channels_last, cuda_graphs) may change numerics, not the experiment.
RESUME_OPTIONS = {"steps", "device", "amp", "channels_last", "cuda_graphs", "log_every", "sample_every", "checkpoint_every",
                  "wandb",
                  "data_dir", "eval_every", "fid_samples", "fid_features", "inception_weights", "dinov2_weights"}


def run_identity(cfg: "TrainConfig") -> dict:
    """What makes a run that run: every option but those a continued run may change (RESUME_OPTIONS)."""
    return {k: v for k, v in sorted(dataclasses.asdict(cfg).items()) if k not in RESUME_OPTIONS}

# How a sine lens leaves once λ reaches 0 at step K (docs/DECISIONS.md, "Lens exit"):
#   drop     dropped right after step K (the default: docs/results/exit-fashion/README.md)
#   blend    L_α(x) = x + α(t)·(L(x) − x), α falling linearly from 1 to 0 over --lens-exit-steps, then dropped
#   converge the paper: trained on ‖X − L(X)‖² alone until it stays within --lens-exit-tolerance, then dropped
#   keep     never dropped (trained on ‖X − L(X)‖² alone after K)
LENS_EXITS = ("drop", "blend", "converge", "keep")
DEFAULT_LENS_EXIT = "drop"
# What tempers the real data before D (docs/DECISIONS.md, "Baselines"): nothing (plain training), the
# learned lens, annealed instance noise on both of D's inputs, or a fixed Gaussian blur of the real
# images. The fixed two have width σ(t) = σ₀·λ(t) and no parameters, so they end at K (like --lens-exit drop).
TEMPERINGS = ("none", "lens", "noise", "blur")
# σ₀ defaults. Noise, in data units: 1 is half the [-1, 1] pixel range, above the spread of the
# pixel values (std 0.67 for Fashion-MNIST), so at t = 0 the noise dominates every pixel; on the ring (radius 2,
# adjacent modes 1.53 apart, std 0.02) it merges neighbouring modes at t = 0 and they separate again
# by K/2 (σ = 0.29). Blur, in pixels: at 2 px a 32×32 image keeps about 3 cycles across (coarse
# silhouettes, no strokes), the paper's "low-frequency approximations".
NOISE_SIGMA = 1.0
BLUR_SIGMA = 2.0
# FID (tempered_gan/metrics): the feature extractors, and samples per FID as in the paper (10 000 for WGAN-GP).
FEATURE_KINDS = ("auto", "classifier", "inception", "dinov2", "points")
DEFAULT_FID_SAMPLES = 4096
FID_SAMPLES = {"gan": DEFAULT_FID_SAMPLES, "lsgan": DEFAULT_FID_SAMPLES, "wgan-gp": 10_000}


def default_fid_samples(loss: str) -> int:
    """Samples per FID as in the paper: 4096 for ``gan``/``lsgan``, 10 000 for ``wgan-gp``."""
    if loss not in FID_SAMPLES:
        raise UserError(f"unknown loss {loss!r}; choose one of: {', '.join(FID_SAMPLES)}")
    return FID_SAMPLES[loss]


@dataclass
class TrainConfig:
    dataset: str = "mixture-ring8"
    data_dir: str | None = None
    resolution: int = 32              # image side in pixels: 32 (the paper's), 64 or 128 (folder, celeba)
    skip_unreadable: bool = False     # folder, celeba: leave out files that cannot be read as images
    loss: str = "gan"                 # gan | lsgan | wgan-gp
    tempering: str = "lens"           # what tempers the real data: none | lens | noise | blur
    schedule: str = "sine"            # the λ schedule of the tempering: sine | constant
    noise_sigma: float | None = None  # noise: σ₀ of σ(t) = σ₀·λ(t), data units
    blur_sigma: float | None = None   # blur: σ₀ of σ(t) = σ₀·λ(t), pixels
    k: int | None = None              # K of the sine schedule
    lambda_value: float = 1.0         # λ of the constant schedule
    steps: int | None = None          # generator iterations in all
    batch_size: int | None = None
    seed: int = 0
    arch: str | None = None           # dcgan | lsgan | wgan-gp | mlp
    width: int | None = None          # channel multiplier C (hidden units for mlp)
    z_dim: int | None = None
    lens_width: int = 32
    lens_blocks: int = 8
    lens_zero_init: bool = False
    reconstruction: str = "mean"      # mean | sum, reduction of ‖X − L(X)‖²
    lens_exit: str | None = None      # how a sine lens leaves after K: drop | blend | converge | keep
    lens_exit_steps: int | None = None  # blend: steps over which L fades to the identity
    lens_exit_tolerance: float = 1e-4    # converge: after K, drop the lens once ‖X − L(X)‖² stays below this ...
    lens_exit_patience: int = 1000       # ... for this many consecutive steps
    optimizer: str | None = None      # adam | rmsprop (G and D; the lens always uses Adam)
    lr: float | None = None
    lens_lr: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    critic_steps: int | None = None
    gp_weight: float | None = None
    r1_gamma: float = 0.0             # R1: γ/2·E‖∇D(x)‖² at D's real input (Mescheder et al. 2018); 0: none
    spectral_norm: bool = False       # spectral normalisation of every conv and linear layer of D (Miyato et al. 2018)
    diffaugment: str = ""             # DiffAugment policy on both of D's inputs: color, translation, cutout; "": off
    blur_both: bool = False           # --tempering blur: blur G(Z) too, as StyleGAN3 does
    g_ema: float = 0.0                # decay of an exponential moving average of G that eval and sample use; 0: off
    log_every: int = 100
    sample_every: int | None = None
    checkpoint_every: int | None = None
    wandb: str = ""                   # Weights & Biases project to mirror the log to; "": none
    eval_every: int = 0               # steps between FID evaluations (0: none)
    fid_samples: int | None = None    # samples per FID
    fid_features: str = "auto"        # auto | classifier | inception | dinov2 | points
    inception_weights: str | None = None
    dinov2_weights: str | None = None
    device: str = "auto"
    amp: str = "none"                 # none | bf16: autocast G, D and lens forwards to bfloat16
    channels_last: bool = False       # channels-last memory format for the image nets
    cuda_graphs: bool = False         # CUDA: replay each step as a captured CUDA graph (experimental)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = migrate(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        try:
            values = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UserError(f"{path} is missing: not a tempered-gan run folder") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from None
        if not isinstance(values, dict):
            raise UserError(f"{path} does not hold a configuration object")
        return cls.from_dict(values)


def read_config_file(path: str | Path) -> dict:
    """The options of a configuration file, ``--config FILE``: a run's ``config.json``, or a TOML file
    with the same keys (a ``.toml`` name). Checked and migrated when they become a :class:`TrainConfig`."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"--config {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:   # Python 3.10: its backport
                import tomli as tomllib

            values = tomllib.loads(text)
        else:
            values = json.loads(text)
    except ValueError as exc:     # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise UserError(f"--config {path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} "
                        f"({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise UserError(f"--config {path} does not hold a table of options")
    return values


# What resolve() always fills: a configuration that has them all set was resolved (a run's config.json).
RESOLVED = ("steps", "k", "batch_size", "arch", "width", "sample_every", "checkpoint_every", "fid_samples",
            "lens_exit_steps")


def underived(values: dict) -> dict:
    """A resolved configuration with every option that :func:`resolve` derives from the others, and that
    still has the derived value, set back to None: changing ``steps`` or ``loss`` on top of a saved run's
    configuration (``--config``) then derives K, the nets, the intervals … anew, as for a new run."""
    derivable = [f.name for f in dataclasses.fields(TrainConfig) if f.default is None]
    out = dict(values)
    for name in derivable:
        if out.get(name) is None:
            continue
        try:
            derived = getattr(resolve(TrainConfig(**{**values, name: None})), name)
        except (UserError, TypeError):
            continue
        if derived == out[name]:
            out[name] = None
    return out


def migrate(values: dict, complete: bool = True) -> dict:
    """A saved configuration (or a grid manifest's run identity) in today's vocabulary; CHANGELOG.md
    lists each change. Earlier run folders load, resume and evaluate as they were trained.
    ``complete=False``: a file of some options only (``--config``), whose missing keys mean their
    defaults, not an earlier version's: only the renamed keys are translated."""
    values = renamed(dict(values), CONFIG_KEYS, "a configuration")   # 0.2.0: retire_* became lens_exit_*
    if not complete:
        return values
    # Saved before lens exits existed: those runs exited by convergence (or never, with keep_lens).
    values.setdefault("lens_exit", "keep" if values.get("keep_lens") else "converge")
    if values.pop("keep_lens", False):     # 0.1.0: --keep-lens, now --lens-exit keep (which it implied)
        values["lens_exit"] = "keep"
    if "lens" in values:                   # 0.1.0: --lens named the schedule, and --lens none meant no tempering
        schedule = values.pop("lens")
        if schedule == "none":
            values["tempering"], schedule = "none", "sine"
        values.setdefault("schedule", schedule)
    values.setdefault("resolution", 32)    # 0.1.0: every image was 32×32
    values.setdefault("skip_unreadable", False)
    values.setdefault("g_ema", 0.0)        # 0.1.0 had no moving average of G
    for key, off in (("spectral_norm", False), ("diffaugment", ""), ("blur_both", False), ("wandb", "")):   # 0.2.0
        values.setdefault(key, off)
    if values.get("compile") is False:     # written before --compile was removed (it never ran on CUDA)
        del values["compile"]
    elif values.get("compile"):
        raise UserError("--compile was removed: inductor failed on CUDA (pytorch/pytorch#171622); "
                        "--cuda-graphs is its replacement")
    return values


def default_arch(dataset: str, loss: str) -> str:
    if dataset_kind(dataset).points:
        return "mlp"
    return {"gan": "dcgan", "lsgan": "lsgan", "wgan-gp": "wgan-gp"}[loss]


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Check every option and fill the ``None`` ones from the presets."""
    _check_choice("dataset", cfg.dataset, DATASET_NAMES)
    _check_choice("loss", cfg.loss, tuple(OBJECTIVES))
    _check_choice("schedule", cfg.schedule, SCHEDULES)
    _check_choice("reconstruction", cfg.reconstruction, ("mean", "sum"))
    if cfg.lens_exit is not None:
        _check_choice("lens-exit", cfg.lens_exit, LENS_EXITS)
    _check_choice("tempering", cfg.tempering, TEMPERINGS)
    points = dataset_kind(cfg.dataset).points
    out = dataclasses.replace(cfg)
    _resolve_tempering(cfg, out, points)
    out.arch = cfg.arch or default_arch(cfg.dataset, cfg.loss)
    _check_choice("arch", out.arch, ARCHITECTURES)
    if points != (out.arch == "mlp"):
        raise UserError(f"arch {out.arch!r} does not fit dataset {cfg.dataset!r}: "
                        "use mlp for the 2-D mixtures, a conv net for images")
    wgan = cfg.loss == "wgan-gp"
    # Presets. Images: the paper (§4) and, for WGAN-GP, Gulrajani's gan_cifar.py.
    # Mixtures: a setting that trains in about a minute on two CPU cores.
    out.steps = _pick(cfg.steps, 4000 if points else 50_000)
    out.k = _pick(cfg.k, out.steps // 2 if points else 10_000)
    out.batch_size = _pick(cfg.batch_size, 256 if points else 64)
    out.width = _pick(cfg.width, 128 if points or wgan else 64)
    out.z_dim = _pick(cfg.z_dim, 2 if points else 128 if wgan else 100)
    out.optimizer = _pick(cfg.optimizer, "adam")
    _check_choice("optimizer", out.optimizer, ("adam", "rmsprop"))
    out.lr = _pick(cfg.lr, 1e-3 if points else 1e-4)
    out.lens_lr = _pick(cfg.lens_lr, out.lr)
    out.beta1 = _pick(cfg.beta1, 0.5)
    out.beta2 = _pick(cfg.beta2, 0.9 if wgan else 0.999)
    out.critic_steps = _pick(cfg.critic_steps, OBJECTIVES[cfg.loss].critic_steps)
    out.gp_weight = _pick(cfg.gp_weight, OBJECTIVES[cfg.loss].gp_weight)
    # The fixed temperings have nothing to fade or keep: they end at K.
    out.lens_exit = _pick(cfg.lens_exit, DEFAULT_LENS_EXIT if cfg.tempering == "lens" else "drop")
    out.lens_exit_steps = _pick(cfg.lens_exit_steps, max(1, out.k // 2))
    out.sample_every = _pick(cfg.sample_every, max(1, out.steps // 10))
    out.checkpoint_every = _pick(cfg.checkpoint_every, max(1, min(out.steps // 10, 5000)))
    out.fid_samples = _pick(cfg.fid_samples, default_fid_samples(cfg.loss))
    _check_choice("amp", out.amp, ("none", "bf16"))
    _check_choice("fid-features", out.fid_features, FEATURE_KINDS)
    if not isinstance(out.eval_every, int) or out.eval_every < 0:
        raise UserError(f"eval-every must be a whole number ≥ 0, got {out.eval_every!r}")
    for name in ("steps", "k", "batch_size", "width", "z_dim", "critic_steps", "log_every",
                 "sample_every", "checkpoint_every", "lens_width", "lens_blocks", "fid_samples", "lens_exit_patience",
                 "lens_exit_steps"):
        value = getattr(out, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UserError(f"{name.replace('_', '-')} must be a positive whole number, got {value!r}")
    for name in ("lr", "lens_lr", "lens_exit_tolerance"):
        check_number(name, getattr(out, name), positive=True)
    for name in ("lambda_value", "gp_weight", "r1_gamma"):
        check_number(name, getattr(out, name))
    for name in ("beta1", "beta2", "g_ema"):
        check_number(name, getattr(out, name), below_one=True)
    if isinstance(cfg.resolution, bool) or cfg.resolution not in IMAGE_SIDES:
        raise UserError(f"--resolution must be {', '.join(map(str, IMAGE_SIDES[:-1]))} or {IMAGE_SIDES[-1]}, "
                        f"got {cfg.resolution!r}")
    problem = dataset_kind(cfg.dataset).size_problem(cfg.resolution)
    if problem:
        raise UserError(f"--resolution {cfg.resolution}: {problem}")
    try:
        out.diffaugment = ",".join(parse_policy(cfg.diffaugment))
    except ValueError as exc:
        raise UserError(f"--diffaugment: {exc}") from None
    if out.diffaugment and points:
        raise UserError(f"--diffaugment transforms images; {cfg.dataset} is 2-D points")
    if cfg.blur_both and cfg.tempering != "blur":
        raise UserError(f"--blur-both blurs G(Z) as well as X under --tempering blur; this run uses --tempering {cfg.tempering}")
    if cfg.skip_unreadable and not dataset_kind(cfg.dataset).image_files:
        raise UserError(f"--skip-unreadable applies to image files (folder, celeba), not to {cfg.dataset}")
    if cfg.dataset == "folder" and not cfg.data_dir:
        raise UserError("dataset 'folder' needs --data-dir pointing at a folder of images")
    return out


def _resolve_tempering(cfg: TrainConfig, out: TrainConfig, points: bool) -> None:
    """Check the tempering options and fill its σ₀; only the chosen kind's σ₀ is set."""
    for kind, name in (("noise", "noise_sigma"), ("blur", "blur_sigma")):
        value = getattr(cfg, name)
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if cfg.tempering != kind:
            raise UserError(f"{flag} is σ₀ of --tempering {kind}; this run uses --tempering {cfg.tempering}")
        try:
            check_sigma(value, flag)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if cfg.tempering in ("none", "lens"):
        return
    kind = cfg.tempering
    if kind == "blur" and points:
        raise UserError(f"--tempering blur blurs images; {cfg.dataset} is 2-D points (use --tempering noise or lens)")
    lens_only = [flag for flag, given in ((f"--lens-exit {cfg.lens_exit}", cfg.lens_exit not in (None, "drop")),
                                          ("--lens-zero-init", cfg.lens_zero_init)) if given]
    if lens_only:
        raise UserError(f"--tempering {kind} has no learned lens and ends at K; it contradicts {', '.join(lens_only)}")
    if kind == "noise":
        out.noise_sigma = float(_pick(cfg.noise_sigma, NOISE_SIGMA))
    else:
        out.blur_sigma = float(_pick(cfg.blur_sigma, BLUR_SIGMA))


def check_number(name: str, value, *, positive: bool = False, below_one: bool = False, at_least: float | None = None) -> None:
    """A float option must be a finite number ≥ 0 (> 0 with ``positive``, < 1 with ``below_one``,
    ≥ ``at_least`` when given); NaN and infinities are refused."""
    flag = name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{flag} must be a number, got {value!r}")
    low = at_least if at_least is not None else 0.0
    ok = math.isfinite(value) and value >= low and (value > 0 or not positive) and (value < 1 or not below_one)
    if not ok:
        need = ("positive and finite" if positive else f"at least {low:g} and finite" if at_least is not None
                else "in [0, 1)" if below_one else "≥ 0 and finite")
        raise UserError(f"{flag} must be {need}, got {value!r}")


def _pick(value, default):
    return default if value is None else value


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise UserError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
