"""The paper's settings (paper §2.4 and §4) and a small CPU demo, as ``compare --preset``
and the rows of ``reproduce``. A preset holds TrainConfig fields and, optionally,
compare's own ``seeds``, ``arms`` and ``fail_fid``; options given on the command
line override it."""
from __future__ import annotations

from dataclasses import dataclass, field

PRESETS = {
    # On 2-D points FID is tiny and noisy (≈ 0.01 from sampling alone), so a factor of
    # the best run would fail healthy runs; 0.1 is well below N(0, I)'s 0.34 (docs/METRICS.md).
    "cpu-ring8": dict(dataset="mixture-ring8", loss="gan", steps=3000, k=1500, eval_every=250,
                      fid_samples=2048, sample_every=1000, seeds=3, arms="none,sine", fail_fid=0.1),
    "dcgan-mnist": dict(dataset="mnist", loss="gan", steps=100_000, k=10_000, eval_every=5000, seeds=3),
    "dcgan-color-mnist": dict(dataset="color-mnist", loss="gan", steps=100_000, k=10_000, eval_every=5000, seeds=3),
    "dcgan-mnist-constant": dict(dataset="mnist", loss="gan", steps=100_000, k=10_000, eval_every=5000, seeds=3,
                                 arms="none,sine,constant"),
    "lsgan-mnist": dict(dataset="mnist", loss="lsgan", steps=100_000, k=10_000, eval_every=5000, seeds=3),
    "lsgan-color-mnist": dict(dataset="color-mnist", loss="lsgan", steps=100_000, k=10_000, eval_every=5000, seeds=3),
    "lsgan-celeba": dict(dataset="celeba", loss="lsgan", steps=100_000, k=10_000, eval_every=5000, seeds=3),
    "wgan-gp-cifar10": dict(dataset="cifar10", loss="wgan-gp", steps=100_000, k=10_000, eval_every=5000, seeds=3),
}


@dataclass(frozen=True)
class Preset:
    """A preset unpacked: the TrainConfig fields, and compare's own options."""

    options: dict = field(default_factory=dict)
    seeds: int = 3
    arms: str = "none,sine"
    fail_fid: float | None = None


def preset(name: str | None) -> Preset:
    """The preset ``name`` (an empty one for None)."""
    if name is None:
        return Preset()
    options = dict(PRESETS[name])
    own = {key: options.pop(key) for key in ("seeds", "arms", "fail_fid") if key in options}
    return Preset(options, **own)
