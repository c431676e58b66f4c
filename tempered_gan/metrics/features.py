"""What FID measures distances between: feature extractors, the Inception weights,
and the cache keys of the features of real data.

* ``inception``: the standard pt_inception-2015-12-05 weights (as in
  torch-fidelity / TTUR), fetched into torch hub's cache on first use; paper-comparable.
* ``points``: the raw 2-D coordinates (FID is then the Fréchet distance of two
  Gaussians fitted to the points).
* ``classifier``: a small CNN trained on the data set's own labels
  (:mod:`tempered_gan.metrics.classifier`).

Caches (``<cache_dir>/metrics``, default ``~/.cache/tempered-gan/metrics``) are
written atomically and keyed by hashes of the exact data used, so a changed
data set rebuilds them; see docs/METRICS.md.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch
from torch import nn

from ..data import Data, default_cache_dir
from ..errors import UserError
from ..fetch import fetch_weights

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
# torch-fidelity publishes the same file (same hash suffix) under this name; accept either in the hub cache.
INCEPTION_FILE_FIDELITY = "weights-inception-2015-12-05-6726825d.pth"
CHUNK = 256   # samples per forward pass of an extractor


CLASSIFIER_INSTEAD = "or use --fid-features classifier, which works offline"   # what a missing Inception file suggests

class FeatureExtractor(nn.Module):
    """Maps samples as the data set yields them (images in [-1, 1], or points) to ``(B, num_features)``.

    ``key`` identifies the extractor and its weights (it is part of every cache key);
    ``description`` is the human-readable line reported with each score.
    """

    num_features: int
    key: str
    description: str


class IdentityFeatures(FeatureExtractor):
    """The samples themselves as features: for 2-D points (``dim=2``), or any flat vectors."""

    def __init__(self, dim: int = 2, description: str | None = None):
        super().__init__()
        self.num_features = dim
        self.key = f"identity-{dim}"
        self.description = description or f"raw {dim}-d coordinates (Fréchet distance of fitted Gaussians)"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).float()


class InceptionFeatures(FeatureExtractor):
    """2048-d pool3 features of the FID Inception network (torchmetrics' ``NoTrainInceptionV3``).

    Images in [-1, 1] are quantised to uint8 as an image file would be, grey
    images are repeated to RGB, and the resize to 299 x 299 uses TensorFlow 1's
    bilinear rule (``antialias=False``), as TTUR / torch-fidelity do, so scores
    match the usual (paper) FID protocol.
    """

    def __init__(self, weights: Path, digest: str):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                      feature_extractor_weights_path=str(weights), antialias=False)
        self.num_features = 2048
        self.key = f"inception-2015-12-05-pool3-tf1resize:{digest}"
        self.description = f"Inception pool3, 2048-d ({weights.name}); comparable with published FIDs at the same sample size"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        return self.net(pixels)


def inception_features(explicit: str | None = None, instead: str = CLASSIFIER_INSTEAD) -> InceptionFeatures:
    """The Inception extractor of the weights file :func:`inception_weights_path` finds
    (``instead``: the alternative its error names)."""
    path = inception_weights_path(explicit, instead)
    return InceptionFeatures(path, _check_inception_file(path))


def inception_weights_path(explicit: str | None = None, instead: str = CLASSIFIER_INSTEAD) -> Path:
    """Where the Inception weights are: ``explicit``, else ``$TEMPERED_GAN_INCEPTION``, else the torch hub cache.

    Where neither is given and the cache lacks the file, it is fetched there
    (``fetch.fetch_weights``); else a one-line UserError names the missing file
    and the places looked in.
    """
    hub = Path(torch.hub.get_dir()) / "checkpoints"   # where torchmetrics and torch-fidelity keep theirs
    if explicit:
        candidates = [Path(explicit).expanduser()]
    elif os.environ.get("TEMPERED_GAN_INCEPTION"):
        candidates = [Path(os.environ["TEMPERED_GAN_INCEPTION"]).expanduser()]
    else:
        candidates = [hub / INCEPTION_FILE, hub / INCEPTION_FILE_FIDELITY]
    for path in candidates:
        if path.is_file():
            return path
    if candidates[0] == hub / INCEPTION_FILE and fetch_weights(INCEPTION_FILE, hub):
        return hub / INCEPTION_FILE
    raise UserError(f"Inception FID weights {INCEPTION_FILE} not found (looked at: {', '.join(map(str, candidates))}); "
                    f"put the file at {hub / INCEPTION_FILE}, set TEMPERED_GAN_INCEPTION or pass --inception-weights PATH "
                    f"(nothing is downloaded for a given path or with TEMPERED_GAN_OFFLINE=1); {instead}")


def _check_inception_file(path: Path) -> str:
    """sha256 of the weights file, after checking it loads as plain tensors.

    torchmetrics loads the file with ``weights_only=False`` (arbitrary pickle);
    loading it here first with ``weights_only=True`` refuses a file that would run code.
    """
    raw = path.read_bytes()
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise UserError(f"{path} is not a readable Inception state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise UserError(f"{path} is not the FID Inception weights ({INCEPTION_FILE})")
    return hashlib.sha256(raw).hexdigest()[:16]


# --- cache keys ---------------------------------------------------------------------

def metrics_dir(cache_dir: str | None) -> Path:
    return Path(cache_dir or default_cache_dir()).expanduser() / "metrics"


def data_fingerprint(data: Data, idx: torch.Tensor) -> str:
    """sha256 of the samples ``data[idx]`` (uint8 pixels for images) and their labels."""
    h = hashlib.sha256(f"{data.name}\0{data.kind}\0{data.shape}\0{len(idx)}".encode())
    for chunk in idx.split(4096):
        x = data.batch(chunk)
        if data.kind == "image":  # stored as uint8, so this round trip is exact and hashes 4x fewer bytes
            x = x.add(1).mul(127.5).round().to(torch.uint8)
        h.update(x.contiguous().numpy().tobytes())
    if data.labels is not None:
        h.update(data.labels[idx].contiguous().numpy().tobytes())
    return h.hexdigest()
