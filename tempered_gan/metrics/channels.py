"""Each channel of a colour-stacked set, scored against the grey set it is stacked from.

Colour MNIST stacks three independent MNIST digits into R, G and B. The paper's failure
there is a *partial* mode collapse: "only the green channel looks like MNIST digits",
the others noise. FID on the stacked image and the count of 1000 digit triples do not
show which channel failed, so each channel is scored on its own:

* ``channel_fid_r``, ``channel_fid_g``, ``channel_fid_b``: the classifier FID of that
  channel, read as a grey image, against the grey train set, on the grey set's
  classifier features (the same net that reads the digits of the 1000 modes);
* ``channel_fid_bound``: the bound a channel must meet to be *like the data*, measured
  from real data alone: the FID of a perfect sampler of half the classes (as many real
  grey train images of classes 0–4, a seeded draw, as there are samples) against the
  same real features. A channel at most this far from the data is closer than a
  generator that never draws half the digits;
* ``channels_like_data``: how many of the three channels meet the bound;
* ``partial_collapse``: 1 when at least one channel meets the bound and at least one
  does not, else 0.

A diverged generator (NaN or Inf samples) scores NaN throughout.
"""
from __future__ import annotations

import math

import torch

from tempered_gan.data.loaders import Data
from tempered_gan.metrics.features import FeatureExtractor
from tempered_gan.metrics.fid import FIDEvaluator

CHANNEL_NAMES = ("r", "g", "b")
CHANNEL_KEYS = tuple(f"channel_fid_{c}" for c in CHANNEL_NAMES)
HALF_CLASSES_SEED = 0


class ChannelEvaluator:
    """Per-channel FID of stacked samples ``(N, 3, H, W)`` against the grey set ``grey``
    (``(1, H, W)`` images with class labels), on the grey ``extractor``."""

    def __init__(self, extractor: FeatureExtractor, grey: Data, n_samples: int, cache_dir: str | None = None):
        classes = int(grey.labels.max()) + 1
        # The bound and each channel's FID on as many samples (FID's bias depends on it): at most the
        # images of half the classes there are (about 30 000 of MNIST's train split).
        self.n = min(n_samples, int((grey.labels < (classes + 1) // 2).sum()))
        self.fid = FIDEvaluator(extractor, grey, n_samples, cache_dir, kid=False)
        self.bound = half_classes_fid(self.fid, grey, self.n)

    def __call__(self, samples: torch.Tensor) -> dict:
        if samples.shape[1] != len(CHANNEL_NAMES):
            raise ValueError(f"per-channel scores need {len(CHANNEL_NAMES)}-channel samples, got {samples.shape[1]}")
        samples = samples[:self.n]
        fids = [self.fid.fid_only(samples[:, c:c + 1]) for c in range(len(CHANNEL_NAMES))]
        out = dict(zip(CHANNEL_KEYS, fids))
        out["channel_fid_bound"] = self.bound
        out.update(collapse_of(fids, self.bound))
        return out


def collapse_of(fids: list[float], bound: float) -> dict:
    """``channels_like_data`` and ``partial_collapse`` for per-channel FIDs against ``bound``
    (NaN for both when any FID is not finite)."""
    if not all(math.isfinite(f) for f in fids):
        return {"channels_like_data": math.nan, "partial_collapse": math.nan}
    like = sum(f <= bound for f in fids)
    return {"channels_like_data": like, "partial_collapse": int(0 < like < len(fids))}


def half_classes_fid(fid: FIDEvaluator, grey: Data, n_samples: int) -> float:
    """FID of ``n_samples`` real images of the lower half of ``grey``'s classes (seeded draw)."""
    classes = int(grey.labels.max()) + 1
    half = torch.nonzero(grey.labels < (classes + 1) // 2).view(-1)
    pick = half[torch.randperm(len(half), generator=torch.Generator().manual_seed(HALF_CLASSES_SEED))[:n_samples]]
    return fid.fid_only(grey.batch(pick))
