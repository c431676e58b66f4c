"""The arms of a comparison: what tempers the real data in each, and variants with their own options.

An arm is a base arm of :data:`ARMS` (``none``, ``sine``, ``noise``, …), optionally with
option overrides: ``sine:k=600`` or ``noise:noise_sigma=0.5`` is an arm of its own, with
its label, colour and run folders, and the same initial G and D, batches and noise per
seed as every other arm. Only options that leave G, D, the data and G's noise untouched
may be overridden (:data:`VARIANT_OPTIONS`).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.errors import UserError

R1_GAMMA = 10.0
DIFFAUGMENT_POLICY = "color,translation,cutout"   # the paper's policy for its CIFAR-10 and few-shot results
ARMS = {
    "none": {"tempering": "none", "schedule": "sine"},
    "sine": {"tempering": "lens", "schedule": "sine"},
    "constant": {"tempering": "lens", "schedule": "constant", "lambda_value": 1.0},
    # The sine lens with each way of leaving after K (--lens-exit; "sine" uses the default or --lens-exit).
    "exit-blend": {"tempering": "lens", "schedule": "sine", "lens_exit": "blend"},
    "exit-drop": {"tempering": "lens", "schedule": "sine", "lens_exit": "drop"},
    "exit-converge": {"tempering": "lens", "schedule": "sine", "lens_exit": "converge"},
    "exit-blend-zero": {"tempering": "lens", "schedule": "sine", "lens_exit": "blend", "lens_zero_init": True},
    # The baselines the paper names but never ran, on the same sine schedule: σ(t) = σ₀·λ(t), ending at K.
    "noise": {"tempering": "noise", "schedule": "sine"},
    "blur": {"tempering": "blur", "schedule": "sine"},
    # StyleGAN3's own tempering: both of D's inputs blurred, σ fading linearly to 0 at K.
    "blur-both": {"tempering": "blur", "schedule": "linear", "blur_both": True},
    # The field's stabilisers, no tempering: R1 on D's real input, γ = 10 (Mescheder et al.'s images);
    # spectral normalisation of D (Miyato et al. 2018); DiffAugment of both of D's inputs (Zhao et al. 2020).
    "r1": {"tempering": "none", "schedule": "sine", "r1_gamma": R1_GAMMA},
    "sn": {"tempering": "none", "schedule": "sine", "spectral_norm": True},
    "diffaug": {"tempering": "none", "schedule": "sine", "diffaugment": DIFFAUGMENT_POLICY},
}
# The arms that add to another (``sine+r1``, ``sine+diffaug``, ``r1+sn``): what they change is D's loss,
# D or D's inputs, never the tempering, so each combines with any tempering arm.
ADDABLE = ("r1", "sn", "diffaug")
# The options only their own arms take (the corresponding flags given to compare or sweep go to them alone).
BASELINE_OPTIONS = ("r1_gamma", "spectral_norm", "diffaugment", "blur_both")
ARM_LABELS = {"none": "no lens", "sine": "sine lens", "constant": "constant λ = 1",
              "exit-blend": "sine, blend exit", "exit-drop": "sine, drop exit",
              "exit-converge": "sine, converge exit (paper)", "exit-blend-zero": "sine, blend exit, zero-init lens",
              "noise": "instance noise", "blur": "blurring lens", "r1": "R1 penalty",
              "blur-both": "blur of both inputs, linear fade (StyleGAN3)", "sn": "spectral norm of D",
              "diffaug": "DiffAugment"}
ARM_COLOURS = {"none": "tab:red", "sine": "tab:blue", "constant": "tab:green", "exit-blend": "tab:purple",
               "exit-drop": "tab:orange", "exit-converge": "tab:brown", "exit-blend-zero": "tab:cyan",
               "noise": "tab:olive", "blur": "tab:pink", "r1": "tab:gray", "blur-both": "magenta",
               "sn": "darkgoldenrod", "diffaug": "darkcyan"}

# Options an arm variant may override (``--arms sine:k=600,noise:noise_sigma=0.5``), by the
# kind of tempering of its base arm. None of them touches G, D, the data or G's noise, so every
# variant of a seed still starts from the same G and D weights as the other arms.
_LENS_OPTIONS = ("lens_width", "lens_blocks", "lens_zero_init", "lens_lr", "reconstruction", "lens_exit",
                 "lens_exit_steps", "lens_exit_tolerance", "lens_exit_patience")
VARIANT_OPTIONS = {"lens": ("k", *_LENS_OPTIONS), "noise": ("k", "noise_sigma"), "blur": ("k", "blur_sigma")}
OWN_OPTIONS = {"r1": ("r1_gamma",), "constant": ("lambda_value",), "diffaug": ("diffaugment",)}   # an arm's own
# A regulariser of D that any tempering combines with (``sine:r1_gamma=10``: the lens and R1 at D's real
# input, which is L(X) while the lens is on): the question "does tempering add anything on top of R1?".
COMBINED_OPTIONS = ("r1_gamma",)
_EXTRA_COLOURS = ("darkblue", "darkgreen", "gold", "black", "teal", "indigo", "salmon", "lime", "navy",
                  "maroon", "orchid", "peru", "slategray")


@dataclass(frozen=True)
class Arm:
    """One arm of a comparison: a base arm of :data:`ARMS` with option overrides, and the arms of
    :data:`ADDABLE` it is combined with.

    ``sine`` is the plain arm; ``sine:k=600:lens_lr=2e-4`` a variant of it, an arm of its own;
    ``sine+r1`` the lens and R1 together, ``sine:k=600+r1:r1_gamma=1`` with variants of both."""

    base: str
    overrides: tuple[tuple[str, object], ...] = ()
    added: tuple["Arm", ...] = ()

    @property
    def name(self) -> str:
        """Canonical spelling, as ``--arms`` takes it."""
        own = ":".join([self.base, *(f"{k}={format_value(v)}" for k, v in self.overrides)])
        return "+".join([own, *(a.name for a in self.added)])

    @property
    def folder(self) -> str:
        """Run-folder stem: the name with ``+`` for ``:`` (``noise+noise_sigma=0.5``, ``sine+r1+r1_gamma=1``);
        :func:`arm_of_folder` reads it back (an option has an ``=``, an added arm has none)."""
        return self.name.replace(":", "+")

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k} = {format_value(v)}" for k, v in self.overrides)
        return " + ".join([ARM_LABELS[self.base] + (f" ({extra})" if extra else ""), *(a.label for a in self.added)])

    def __str__(self) -> str:
        return self.name


def format_value(value) -> str:
    """An override as --arms spells it: 0.5, 600, true, 1e6 (never 1e+06: + joins arms)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, float):
        return str(value)
    text = f"{value:g}"
    return re.sub(r"e\+0*(\d)", r"e\1", text)   # 1e+06 → 1e6; a negative exponent keeps its spelling (1e-05)


def parse_arm(spec: str) -> Arm:
    """``base[:option=value]…[+added[:option=value]…]…`` → :class:`Arm`. Option names take dashes or
    underscores; values are parsed by the option's type. One clear error for anything else."""
    first, *others = spec.strip().split("+")
    arm = _parse_part(first, spec)
    added = []
    for text in others:
        part = _parse_part(text, spec)
        if part.base not in ADDABLE:
            raise UserError(f"arm {spec!r}: only {', '.join(ADDABLE)} can be added to an arm with +, not {part.base!r}")
        if part.base in {arm.base, *(a.base for a in added)}:
            raise UserError(f"arm {spec!r}: {part.base} is named twice")
        added.append(part)
    order = lambda a: ADDABLE.index(a.base)  # noqa: E731
    if added and arm.base in ADDABLE:     # stabilisers alone (sn+r1): one spelling, in ADDABLE's order (r1+sn)
        arm, *added = sorted([arm, *added], key=order)
    return Arm(arm.base, arm.overrides, tuple(sorted(added, key=order)))


def arm_of_folder(stem: str) -> Arm:
    """The arm whose run folders are named ``stem`` (:attr:`Arm.folder`)."""
    parts: list[str] = []
    for token in stem.split("+"):
        if "=" in token and parts:
            parts[-1] += ":" + token
        else:
            parts.append(token)
    return parse_arm("+".join(parts))


def _parse_part(text: str, spec: str) -> Arm:
    base, *parts = text.strip().split(":")
    if base not in ARMS:
        raise UserError(f"unknown arm {base!r} in --arms {spec!r}; choose from: {', '.join(ARMS)}")
    options = ARMS[base]
    allowed = VARIANT_OPTIONS.get(options["tempering"], ())   # none: no tempering options
    allowed = tuple(a for a in allowed if a not in options and not (a == "k" and options["schedule"] == "constant"))
    allowed += OWN_OPTIONS.get(base, ()) + (COMBINED_OPTIONS if options["tempering"] != "none" else ())
    types = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    overrides = {}
    for part in parts:
        pair = option_pair(part)
        if pair is None:
            raise UserError(f"arm {spec!r}: write each option as name=value after a colon, e.g. sine:k=600")
        key, text = pair
        if key not in types:
            raise UserError(f"arm {spec!r}: unknown option {key!r}")
        if key not in allowed:
            raise UserError(f"arm {spec!r}: {key} does not apply to the {base} arm"
                            + (f" (it takes {', '.join(allowed)})" if allowed else " (it has no tempering options)"))
        if key in overrides:
            raise UserError(f"arm {spec!r}: {key} is given twice")
        overrides[key] = parse_value(f"arm {spec!r}", key, text.strip(), types[key])
    return Arm(base, tuple(sorted(overrides.items())))


def option_pair(text: str) -> tuple[str, str] | None:
    """``name=value`` → (the option's field name, the value's text); None when either is missing."""
    key, eq, value = text.partition("=")
    key = key.strip().replace("-", "_")
    return (key, value) if eq and key and value.strip() else None


def parse_value(where: str, key: str, text: str, kind: str):
    """``text`` as a value of option ``key`` of type ``kind``; one error naming ``where`` if it is not one."""
    try:
        if kind.startswith("bool"):
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        need = {"b": "true or false", "i": "a whole number", "f": "a finite number"}[kind[0]]
        raise UserError(f"{where}: {key} must be {need}, got {text!r}") from None
    return text


def parse_arms(text: str) -> list[Arm]:
    """``--arms``: comma-separated arm specs (a repeated arm is refused with the grid,
    :func:`tempered_gan.studies.compare.grid_configs`)."""
    arms = [parse_arm(s) for s in text.split(",") if s.strip()]
    if not arms:
        raise UserError("--arms names no arm")
    return arms


def arm_colours(arms: list[Arm]) -> dict[str, str]:
    """A plain arm gets its base's colour (so ``sine`` is blue in every report); a variant gets its
    base's colour when the plain arm is absent, else the next free colour."""
    colours = {a.name: ARM_COLOURS[a.base] for a in arms if not a.overrides and not a.added}
    extra = iter(c for c in _EXTRA_COLOURS if c not in colours.values())
    for arm in arms:
        if arm.name not in colours:
            own = ARM_COLOURS[arm.base]
            colours[arm.name] = own if own not in colours.values() else next(extra, "tab:gray")
    return {a.name: colours[a.name] for a in arms}


def arm_config(base: TrainConfig, arm: "Arm | str", seed: int) -> TrainConfig:
    """The arm's configuration for one seed. Options of the other kinds of tempering
    are reset: the lens arms take no σ₀, the noise and blur arms no lens-exit options
    (they end at K), and each σ₀ goes to its own arm only, as γ of R1 (``--r1-gamma``) goes to
    the arms with r1 only and the policy of ``--diffaugment`` to those with diffaug. An added arm
    brings its own options (``sine+r1``: the lens, and γ of R1); a variant's overrides come last."""
    arm = parse_arm(arm) if isinstance(arm, str) else arm
    options = dict(ARMS[arm.base])
    for part in (arm, *arm.added):
        if part is not arm:
            options.update({k: v for k, v in ARMS[part.base].items() if k not in ("tempering", "schedule")})
        if part.base == "r1" and base.r1_gamma:
            options["r1_gamma"] = base.r1_gamma
        if part.base == "diffaug" and base.diffaugment:
            options["diffaugment"] = base.diffaugment
    kind = options["tempering"]
    reset = {"noise_sigma": None, "blur_sigma": None, "r1_gamma": 0.0, "spectral_norm": False, "diffaugment": "",
             "blur_both": False}
    if kind in ("noise", "blur"):
        reset = {**reset, f"{kind}_sigma": getattr(base, f"{kind}_sigma"), "lens_exit": None,
                 "lens_zero_init": False}
    try:
        overrides = {k: v for part in (arm, *arm.added) for k, v in part.overrides}
        return resolve(dataclasses.replace(base, seed=seed, **{**reset, **options, **overrides}))
    except UserError as exc:
        if not arm.overrides:
            raise
        raise UserError(f"arm {arm.name!r}: {exc}") from None


def reference_arm(arms: list[Arm], reference: str | None = None) -> str:
    """The arm the others are compared with seed by seed: ``reference`` (any spelling of one of
    ``arms``), else the arm without tempering, else the first."""
    if reference is None:
        return next((a.name for a in arms if a.base == "none" and not a.added), arms[0].name)
    name = parse_arm(reference).name
    if name not in {a.name for a in arms}:
        raise UserError(f"--reference {reference!r} is not one of the arms ({', '.join(a.name for a in arms)})")
    return name
