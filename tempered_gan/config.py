"""A run's configuration: one flat dataclass, resolved from presets, saved as JSON.

Fields left ``None`` are filled by :func:`resolve` from the preset of the data
set and loss (the paper's settings for images, a fast setting for the 2-D
mixtures). The resolved configuration is what ``config.json`` holds and what
``--dry-run`` prints; an unknown key in a saved configuration is an error.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .lens import SCHEDULES
from .losses import OBJECTIVES
from .nets import ARCHITECTURES

CONFIG = "config.json"   # the resolved configuration in a run folder

# Options that may change on resume without changing the run itself.
# Speed options (device, amp, channels_last, compile) may change numerics, not the experiment.
RESUME_OPTIONS = {"steps", "device", "amp", "channels_last", "compile", "log_every", "sample_every", "checkpoint_every",
                  "data_dir", "eval_every", "fid_samples", "fid_features", "inception_weights"}

POINT_DATASETS = ("mixture-ring8", "mixture-grid25")
IMAGE_DATASETS = ("mnist", "fashion-mnist", "color-mnist", "color-fashion-mnist", "cifar10", "celeba", "folder")


@dataclass
class TrainConfig:
    dataset: str = "mixture-ring8"
    data_dir: str | None = None
    loss: str = "gan"                 # gan | lsgan | wgan-gp
    lens: str = "sine"                # sine | constant | none
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
    keep_lens: bool = False           # never retire the lens (see retire_tolerance)
    retire_tolerance: float = 1e-4    # after K, drop the lens once ‖X − L(X)‖² stays below this ...
    retire_patience: int = 1000       # ... for this many consecutive steps
    optimizer: str | None = None      # adam | rmsprop (G and D; the lens always uses Adam)
    lr: float | None = None
    lens_lr: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    critic_steps: int | None = None
    gp_weight: float | None = None
    log_every: int = 100
    sample_every: int | None = None
    checkpoint_every: int | None = None
    eval_every: int = 0               # steps between FID evaluations (0: none)
    fid_samples: int | None = None    # 4096 for gan/lsgan, 10 000 for wgan-gp (paper)
    fid_features: str = "auto"        # auto | classifier | inception | points
    inception_weights: str | None = None
    device: str = "auto"
    amp: str = "none"                 # none | bf16: autocast G, D and lens forwards to bfloat16
    channels_last: bool = False       # channels-last memory format for the image nets
    compile: bool = False             # torch.compile G, D (not for wgan-gp: double backward) and the lens

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
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


def default_arch(dataset: str, loss: str) -> str:
    if dataset in POINT_DATASETS:
        return "mlp"
    return {"gan": "dcgan", "lsgan": "lsgan", "wgan-gp": "wgan-gp"}[loss]


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Check every option and fill the ``None`` ones from the presets."""
    _check_choice("dataset", cfg.dataset, POINT_DATASETS + IMAGE_DATASETS)
    _check_choice("loss", cfg.loss, tuple(OBJECTIVES))
    _check_choice("lens", cfg.lens, SCHEDULES)
    _check_choice("reconstruction", cfg.reconstruction, ("mean", "sum"))
    points = cfg.dataset in POINT_DATASETS
    out = dataclasses.replace(cfg)
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
    out.sample_every = _pick(cfg.sample_every, max(1, out.steps // 10))
    out.checkpoint_every = _pick(cfg.checkpoint_every, max(1, min(out.steps // 10, 5000)))
    out.fid_samples = _pick(cfg.fid_samples, 10_000 if wgan else 4096)
    _check_choice("amp", out.amp, ("none", "bf16"))
    _check_choice("fid-features", out.fid_features, ("auto", "classifier", "inception", "points"))
    if not isinstance(out.eval_every, int) or out.eval_every < 0:
        raise UserError(f"eval-every must be a whole number ≥ 0, got {out.eval_every!r}")
    for name in ("steps", "k", "batch_size", "width", "z_dim", "critic_steps", "log_every",
                 "sample_every", "checkpoint_every", "lens_width", "lens_blocks", "fid_samples", "retire_patience"):
        value = getattr(out, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UserError(f"{name.replace('_', '-')} must be a positive whole number, got {value!r}")
    for name in ("lr", "lens_lr", "retire_tolerance"):
        check_number(name, getattr(out, name), positive=True)
    for name in ("lambda_value", "gp_weight"):
        check_number(name, getattr(out, name))
    for name in ("beta1", "beta2"):
        check_number(name, getattr(out, name), below_one=True)
    if cfg.dataset == "folder" and not cfg.data_dir:
        raise UserError("dataset 'folder' needs --data-dir pointing at a folder of images")
    return out


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
