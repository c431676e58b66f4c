"""FID / KID against the real data X, and mode coverage where the data set defines modes.

The statistics come from torchmetrics (``FrechetInceptionDistance``,
``KernelInceptionDistance``); this module supplies the feature extractors, the
real-feature cache and the mode counters. Features are computed once per
sample and handed to both metrics through an identity "feature extractor"
(``_Precomputed``), so FID and KID share one pass of the network and the real
features can be cached on disk as a plain ``(n, d)`` tensor.

Feature extractors (``feature_extractor``):

* ``classifier`` (default for labelled image sets, offline): a small CNN
  trained once on the data set's own labels; features are its 128-d
  penultimate layer. Colour-stacked sets use the grey base set's classifier on
  each channel (3 x 128-d). Numbers are NOT comparable with Inception FID.
* ``inception``: the standard pt_inception-2015-12-05 weights (as in
  torch-fidelity / TTUR), fetched into torch hub's cache on first use; paper-comparable.
* ``points``: the raw 2-D coordinates (FID is then the Fréchet distance of two
  Gaussians fitted to the points).

Caches (``<cache_dir>/metrics``, default ``~/.cache/tempered-gan/metrics``) are
written atomically and keyed by hashes of the exact data used, so a changed
data set rebuilds them; see docs/METRICS.md.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from tempered_gan.checkpoint import write_cache
from tempered_gan.data import MIXTURE_SPECS, Data, default_cache_dir, load_dataset, mixture_centres
from tempered_gan.errors import UserError
from tempered_gan.fetch import fetch_weights

FEATURE_KINDS = ("auto", "classifier", "inception", "points")
DEFAULT_FID_SAMPLES = 4096
STACKED_MODES = 1000
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
# torch-fidelity publishes the same file (same hash suffix) under this name; accept either in the hub cache.
INCEPTION_FILE_FIDELITY = "weights-inception-2015-12-05-6726825d.pth"
CLASSIFIER_VERSION = 1     # bump when the network or the training loop changes: old caches then no longer match
REAL_SUBSET_SEED = 20180401
KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED = 100, 1000, 0
CHUNK = 256
# Metrics that never take part in a collective: scores are of this process's samples alone.
LOCAL = dict(sync_on_compute=False, distributed_available_fn=lambda: False)


def default_fid_samples(loss: str) -> int:
    """Samples per FID as in the paper: 4096 for ``gan``/``lsgan``, 10 000 for ``wgan-gp``."""
    sizes = {"gan": DEFAULT_FID_SAMPLES, "lsgan": DEFAULT_FID_SAMPLES, "wgan-gp": 10_000}
    if loss not in sizes:
        raise UserError(f"unknown loss {loss!r}; choose one of: {', '.join(sizes)}")
    return sizes[loss]


# --- feature extractors --------------------------------------------------------

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


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
    """How the FID classifier is trained; every field is part of its cache key.

    The defaults took 27.5 s for Fashion-MNIST on a busy 2-core CPU (test accuracy 0.899; docs/METRICS.md).
    """

    train_samples: int = 60_000   # a seeded subset of the train split when it is larger
    epochs: int = 2
    batch_size: int = 128
    lr: float = 5e-3              # peak of a one-cycle schedule: reaches good accuracy in few epochs
    width: int = 16
    feature_dim: int = 128
    seed: int = 0


class ClassifierNet(nn.Module):
    """Three stride-2 convolutions, a ``feature_dim`` hidden layer, 10 logits.

    Strided convolutions instead of pooling keep training cheap on a CPU;
    batch norm lets one or two epochs reach a useful accuracy.
    """

    def __init__(self, in_channels: int, width: int = 16, feature_dim: int = 128, classes: int = 10):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 5, 2, 2), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.Flatten(), nn.Linear(4 * w * 4 * 4, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer, ``(B, feature_dim)``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, ``(B, classes)``."""
        return self.head(self.body(x))


class ClassifierFeatures(FeatureExtractor):
    """Penultimate features of a ``ClassifierNet``; ``per_channel`` applies a grey net to each channel.

    ``accuracy`` is the net's accuracy on the test split of the set it was trained on.
    """

    def __init__(self, net: ClassifierNet, *, key: str, accuracy: float, trained_on: str, per_channel: bool):
        super().__init__()
        self.net = net.eval()
        self.accuracy = accuracy
        self.per_channel = per_channel
        feature_dim = net.head.in_features
        self.num_features = 3 * feature_dim if per_channel else feature_dim
        self.key = key + (":per-channel" if per_channel else "")
        layout = f"3 x {feature_dim}-d, one per channel" if per_channel else f"{feature_dim}-d"
        self.description = (f"classifier v{CLASSIFIER_VERSION} trained on {trained_on} ({layout}, "
                            f"test accuracy {accuracy:.3f}); not comparable with Inception FID")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.per_channel:
            return self.net.features(x)
        b, c = x.shape[:2]
        return self.net.features(x.reshape(b * c, 1, *x.shape[2:])).reshape(b, -1)


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


def feature_extractor(kind: str, dataset: str, data_dir: str | None = None, *, cache_dir: str | None = None,
                      inception_weights: str | None = None, device: str | torch.device = "cpu",
                      classifier: ClassifierSettings = ClassifierSettings()) -> FeatureExtractor:
    """The feature extractor ``kind`` ("auto", "classifier", "inception", "points") for ``dataset``, on ``device``.

    "auto" is points for the 2-D mixtures, inception for the unlabelled sets
    (celeba, folder) and classifier otherwise. The classifier is trained on
    first use (seeded, deterministic on CPU) and cached under
    ``<cache_dir>/metrics``; later calls load it while the data and
    ``classifier`` settings are unchanged. Inception weights are fetched
    on first use: see ``inception_weights_path``.
    """
    kind = _resolve_kind(kind, dataset)
    if kind == "points":
        extractor: FeatureExtractor = IdentityFeatures(2)
    elif kind == "inception":
        path = inception_weights_path(inception_weights)
        extractor = InceptionFeatures(path, _check_inception_file(path))
    else:
        extractor = _classifier_features(dataset, data_dir, cache_dir, classifier, torch.device(device))
    return extractor.to(device).eval()


def _resolve_kind(kind: str, dataset: str) -> str:
    if kind not in FEATURE_KINDS:
        raise UserError(f"unknown FID features {kind!r}; choose one of: {', '.join(FEATURE_KINDS)}")
    points = dataset.startswith("mixture-")
    if kind == "auto":
        return "points" if points else "inception" if dataset in ("celeba", "folder") else "classifier"
    if points != (kind == "points"):
        raise UserError(f"--fid-features {kind} does not apply to {dataset}; use "
                        f"{'points' if points else 'classifier or inception'} (or auto)")
    if kind == "classifier" and dataset in ("celeba", "folder"):
        raise UserError(f"{dataset} has no labels to train the FID classifier on; use --fid-features inception")
    return kind


def inception_weights_path(explicit: str | None = None) -> Path:
    """Where the Inception weights are: ``explicit``, else ``$TEMPERED_GAN_INCEPTION``, else the torch hub cache.

    Where neither is given and the cache lacks the file, it is fetched there
    (``fetch.fetch_weights``); else a one-line UserError names the missing file
    and the places looked in.
    """
    hub = Path(torch.hub.get_dir()) / "checkpoints"
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
                    "(nothing is downloaded for a given path or with TEMPERED_GAN_OFFLINE=1), "
                    "or use --fid-features classifier, which works offline")


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


# --- the classifier: training and its cache ------------------------------------

def _classifier_features(dataset: str, data_dir: str | None, cache_dir: str | None,
                         settings: ClassifierSettings, device: torch.device) -> ClassifierFeatures:
    """Load the cached classifier for ``dataset`` (its grey base set if colour-stacked), or train and cache it."""
    base = dataset.removeprefix("color-")
    train = load_dataset(base, data_dir, split="train", cache_dir=cache_dir)
    test = load_dataset(base, data_dir, split="test", cache_dir=cache_dir)
    if train.labels is None or train.labels.dim() != 1:
        raise UserError(f"{dataset} has no labels to train the FID classifier on; use --fid-features inception")
    n = min(settings.train_samples, len(train))
    subset = torch.randperm(len(train), generator=torch.Generator().manual_seed(settings.seed))[:n]
    key = hashlib.sha256(repr((CLASSIFIER_VERSION, base, dataclasses.asdict(settings))).encode())
    key.update(_fingerprint(train, subset).encode())
    key.update(_fingerprint(test, torch.arange(len(test))).encode())
    key = key.hexdigest()
    # One file per base set and settings: a changed data set overwrites its stale classifier.
    slot = hashlib.sha256(repr((base, dataclasses.asdict(settings))).encode()).hexdigest()[:12]
    path = _metrics_dir(cache_dir) / f"classifier-{base}-{slot}.pt"
    net = ClassifierNet(train.shape[0], settings.width, settings.feature_dim)
    accuracy = _load_classifier(net, _read_cache(path), key)
    if accuracy is None:
        print(f"training the {base} FID classifier once (cached in {path})", file=sys.stderr)
        net, accuracy, seconds = _train_classifier(train, test, subset, settings, device)
        _write_cache(path, {"key": key, "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
                            "accuracy": accuracy, "train_seconds": seconds, "settings": dataclasses.asdict(settings)})
    return ClassifierFeatures(net, key=f"classifier:{key}", accuracy=accuracy, trained_on=base,
                              per_channel=dataset != base)


def _load_classifier(net: ClassifierNet, cached: dict, key: str) -> float | None:
    """Load a cached classifier into ``net`` and return its accuracy; None when missing, stale or damaged."""
    if cached.get("key") != key:
        return None
    try:
        net.load_state_dict(cached["state_dict"])
        return float(cached["accuracy"])
    except (KeyError, RuntimeError, TypeError, ValueError):
        return None


def _train_classifier(train: Data, test: Data, subset: torch.Tensor, settings: ClassifierSettings,
                      device: torch.device) -> tuple[ClassifierNet, float, float]:
    """Train on ``train[subset]``; return the net (eval mode), its test accuracy and the seconds taken.

    The global RNG is forked and seeded, so training is repeatable and leaves a
    caller's random state (e.g. a training run's) untouched. On the CPU it runs
    on one thread: the result then does not depend on the machine's core count,
    and this small net gains little from more threads but lost 30x on a busy
    2-core machine (4.1 s against 139 s for 10 000 images, docs/METRICS.md).
    """
    start = time.perf_counter()
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        net = _fit(train, subset, settings, device)
    finally:
        torch.set_num_threads(threads)
    correct = 0
    with torch.no_grad():
        for idx in torch.arange(len(test)).split(1024):
            correct += int((net(test.batch(idx).to(device)).argmax(1).cpu() == test.labels[idx]).sum())
    return net.cpu(), correct / len(test), time.perf_counter() - start


def _fit(train: Data, subset: torch.Tensor, settings: ClassifierSettings, device: torch.device) -> ClassifierNet:
    """Adam with a one-cycle schedule over ``settings.epochs`` seeded shuffles of ``subset``."""
    gen = torch.Generator().manual_seed(settings.seed)
    steps = settings.epochs * math.ceil(len(subset) / settings.batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = ClassifierNet(train.shape[0], settings.width, settings.feature_dim).to(device)
        opt = torch.optim.Adam(net.parameters(), settings.lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=steps)
        net.train()
        for _ in range(settings.epochs):
            for idx in subset[torch.randperm(len(subset), generator=gen)].split(settings.batch_size):
                logits = net(train.batch(idx).to(device))
                loss = nn.functional.cross_entropy(logits, train.labels[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
    return net.eval()


# --- FID / KID -------------------------------------------------------------------

class _Precomputed(nn.Module):
    """Identity "feature extractor": torchmetrics receives features we computed ourselves."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FIDEvaluator:
    """FID (and KID) of generated samples against a fixed real subset of ``real``.

    The real features of ``n_samples`` real samples (a seeded subset, all of
    them when the set is smaller) are computed once and cached in
    ``<cache_dir>/metrics``, keyed by the extractor, the exact real samples and n.
    ``real_from_cache`` says whether they were loaded. ``kid=False`` skips KID.
    """

    def __init__(self, extractor: FeatureExtractor, real: Data, n_samples: int = DEFAULT_FID_SAMPLES,
                 cache_dir: str | None = None, *, kid: bool = True):
        n = min(n_samples, len(real))
        if n < 2:
            raise UserError(f"FID needs at least 2 samples, got {n_samples} requested of {len(real)} real ones")
        self.extractor = extractor.eval()
        self.real = real
        self.n_samples = n_samples
        self.device = next(extractor.parameters(), torch.empty(0)).device
        idx = torch.randperm(len(real), generator=torch.Generator().manual_seed(REAL_SUBSET_SEED))[:n]
        key = hashlib.sha256(f"{extractor.key}\0{real.name}\0{n}\0{_fingerprint(real, idx)}".encode()).hexdigest()
        slot = hashlib.sha256(f"{extractor.key}\0{real.name}\0{len(real)}".encode()).hexdigest()[:12]
        path = _metrics_dir(cache_dir) / f"real-{real.name}-n{n}-{slot}.pt"
        cached = _read_cache(path)
        features = cached.get("features")
        self.real_from_cache = (cached.get("key") == key and isinstance(features, torch.Tensor)
                                and features.shape == (n, extractor.num_features))
        if not self.real_from_cache:
            features = torch.cat([self._features(real.batch(chunk)) for chunk in idx.split(CHUNK)])
            _write_cache(path, {"key": key, "features": features})
        self.real_features = features
        dim = extractor.num_features
        # reset_real_features=False: reset() between scores clears only the generated side.
        # LOCAL: with torchrun only rank 0 evaluates; torchmetrics' default compute() would gather
        # over the process group, a collective the other ranks never join (issue 8: a hang).
        self._fid = FrechetInceptionDistance(feature=_Precomputed(dim), reset_real_features=False, **LOCAL)
        self._fid.update(features, real=True)
        self._kid = None
        if kid:
            with warnings.catch_warnings():  # its "keeps all features in memory" warning: they are few here
                warnings.simplefilter("ignore", UserWarning)
                self._kid = KernelInceptionDistance(feature=_Precomputed(dim), subsets=KID_SUBSETS,
                                                    subset_size=min(KID_SUBSET_SIZE, n), reset_real_features=False,
                                                    **LOCAL)
            self._kid.update(features, real=True)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.extractor(x.to(self.device)).float().cpu()

    def score_samples(self, samples: torch.Tensor) -> dict:
        """FID/KID of ``samples`` (``(N, *real.shape)``, images in [-1, 1]) against the real features."""
        if samples.shape[1:] != torch.Size(self.real.shape):
            raise ValueError(f"generated samples have shape {tuple(samples.shape[1:])}, "
                             f"the data set's are {self.real.shape}")
        if len(samples) < 2:
            raise UserError(f"FID needs at least 2 samples, got {len(samples)}")
        fake = torch.cat([self._features(chunk) for chunk in samples.split(CHUNK)])
        out = {"fid": math.nan, "features": self.extractor.description, "samples": len(fake),
               "real_samples": len(self.real_features)}
        if self._kid is not None:
            out["kid"] = out["kid_std"] = math.nan
        if not torch.isfinite(fake).all():  # a diverged G: report NaN rather than fail the run
            return out
        self._fid.reset()
        self._fid.update(fake, real=False)
        out["fid"] = float(self._fid.compute())
        if self._kid is not None and len(fake) >= self._kid.subset_size:
            self._kid.reset()
            self._kid.update(fake, real=False)
            # When both sets are exactly one subset, every subset is the same: one is enough.
            whole = len(fake) == len(self.real_features) == self._kid.subset_size
            self._kid.subsets = 1 if whole else KID_SUBSETS
            # KID draws its subsets from the global RNG: fork and seed it, so scores repeat and a run's RNG is untouched.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(KID_SEED)
                mean, std = self._kid.compute()
            out["kid"], out["kid_std"] = float(mean), float(std)
        return out

    def score(self, generate: Callable[[int], torch.Tensor], n_samples: int | None = None) -> dict:
        """Score ``generate(n)`` (one call, n samples) with n = ``n_samples`` or the constructor's.

        Returns ``fid``, ``features`` (the extractor's description), ``samples``,
        ``real_samples`` and, with KID on, ``kid`` / ``kid_std`` (NaN when fewer
        samples than a KID subset). ``generate`` is called once with the full
        count because a seeded generator (e.g. ``Trainer.generate``) would
        repeat the same samples if called per chunk; features are then
        computed in chunks of 256.
        """
        with torch.no_grad():
            samples = generate(n_samples or self.n_samples)
        return self.score_samples(samples)


# --- mode coverage -------------------------------------------------------------

def stacked_mode_coverage(samples: torch.Tensor, classifier: nn.Module) -> dict:
    """Modes of Stacked/Colour MNIST covered by ``samples`` ``(N, 3, 32, 32)`` in [-1, 1].

    ``classifier`` maps grey images ``(B, 1, 32, 32)`` to 10 logits (a
    ``ClassifierFeatures`` is accepted too); the digits read in R, G, B give one
    of 1000 modes. Returns ``modes`` (modes with at least one sample) and
    ``kl`` = KL(p || uniform over 1000) = sum over p > 0 of p log(1000 p), as in VEEGAN / PacGAN.
    """
    if isinstance(classifier, ClassifierFeatures):
        classifier = classifier.net
    ids = torch.cat([_stacked_mode_ids(chunk, classifier) for chunk in samples.split(CHUNK)])
    counts = torch.bincount(ids, minlength=STACKED_MODES).double()
    p = counts[counts > 0] / len(ids)
    return {"modes": int((counts > 0).sum()), "modes_total": STACKED_MODES,
            "kl": float((p * (p * STACKED_MODES).log()).sum())}


def _stacked_mode_ids(x: torch.Tensor, classifier: nn.Module) -> torch.Tensor:
    device = next(classifier.parameters(), torch.empty(0)).device
    b = len(x)
    with torch.no_grad():
        digits = classifier(x.reshape(b * 3, 1, *x.shape[2:]).to(device)).argmax(1).cpu().reshape(b, 3)
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


# The grey sets whose classes the FID classifier reads (also the colour sets' mode reader).
CLASS_COVERAGE_SETS = ("mnist", "fashion-mnist")
CLASSES = 10
# A class is covered when it gets at least this share of a fair share (1/10 of the samples):
# the classifier's errors put a few samples into every class, so "at least one sample" would
# count a generator of one garment as covering all ten (docs/METRICS.md).
CLASS_COVERED_SHARE = 0.5


def class_coverage(samples: torch.Tensor, classifier: nn.Module) -> dict:
    """Classes of a labelled grey set covered by ``samples`` ``(N, 1, 32, 32)`` in [-1, 1].

    ``classifier`` (or its ``ClassifierFeatures``) reads each sample's class. Returns
    ``modes`` (classes given at least ``CLASS_COVERED_SHARE`` of a fair share of the
    samples), ``modes_total`` (10) and ``kl`` = KL(p ‖ uniform over the classes), which
    grows as G collapses onto fewer classes."""
    if isinstance(classifier, ClassifierFeatures):
        classifier = classifier.net
    device = next(classifier.parameters(), torch.empty(0)).device
    with torch.no_grad():
        ids = torch.cat([classifier(chunk.to(device)).argmax(1).cpu() for chunk in samples.split(CHUNK)])
    counts = torch.bincount(ids, minlength=CLASSES).double()
    share = counts / len(ids)
    p = share[share > 0]
    return {"modes": int((share >= CLASS_COVERED_SHARE / CLASSES).sum()), "modes_total": CLASSES,
            "kl": float((p * (p * CLASSES).log()).sum())}


def mixture_coverage(points: torch.Tensor, name: str, *, min_samples: int = 1) -> dict:
    """Mode coverage of 2-D ``points`` ``(N, 2)`` for mixture ``name`` (VEEGAN / PacGAN's 3-std criterion).

    A sample is high quality when it lies within 3 std of its nearest centre; a
    mode is covered when at least ``min_samples`` high-quality samples have it
    as nearest centre. Returns ``modes``, ``modes_total`` and ``high_quality``
    (the fraction of high-quality samples).
    """
    centres = mixture_centres(name)
    dist, nearest = torch.cdist(points.float().cpu(), centres).min(dim=1)
    good = dist <= 3 * MIXTURE_SPECS[name].std
    per_mode = torch.bincount(nearest[good], minlength=len(centres))
    return {"modes": int((per_mode >= min_samples).sum()), "modes_total": len(centres),
            "high_quality": float(good.double().mean())}


def coverage(data_name: str, samples: torch.Tensor, classifier: nn.Module | None = None) -> dict | None:
    """Mode coverage of ``samples`` for ``data_name``; None where the data set defines no modes.

    Mixtures use ``mixture_coverage``; colour-stacked sets ``stacked_mode_coverage`` and
    the labelled grey sets (``CLASS_COVERAGE_SETS``) ``class_coverage``, both with
    ``classifier`` (required there: the grey set's classifier or its ``ClassifierFeatures``).
    """
    if data_name in MIXTURE_SPECS:
        return mixture_coverage(samples, data_name)
    if data_name.startswith("color-") or data_name in CLASS_COVERAGE_SETS:
        if classifier is None:
            raise ValueError(f"coverage of {data_name} needs the classifier of its grey set")
        return (stacked_mode_coverage if data_name.startswith("color-") else class_coverage)(samples, classifier)
    return None


# --- the single entry point ----------------------------------------------------

class Evaluator:
    """Everything needed to score generators for one data set: extractor, real features, coverage classifier.

    Build it once and call it for each evaluation (``evaluate`` keeps one per
    argument set for the process). FID is always against the train split of X.
    """

    def __init__(self, dataset: str, data_dir: str | None = None, *, features: str = "auto",
                 n_samples: int = DEFAULT_FID_SAMPLES, cache_dir: str | None = None,
                 device: str | torch.device = "cpu", inception_weights: str | None = None, kid: bool = True):
        self.dataset = dataset
        self.n_samples = n_samples
        self.extractor = feature_extractor(features, dataset, data_dir, cache_dir=cache_dir,
                                           inception_weights=inception_weights, device=device)
        real = load_dataset(dataset, data_dir, split="train", cache_dir=cache_dir)
        self.fid = FIDEvaluator(self.extractor, real, n_samples, cache_dir, kid=kid)
        self.classifier = None
        if dataset.startswith("color-") or dataset in CLASS_COVERAGE_SETS:  # needed even for Inception FID
            self.classifier = (self.extractor if isinstance(self.extractor, ClassifierFeatures) else
                               feature_extractor("classifier", dataset, data_dir, cache_dir=cache_dir, device=device))

    def __call__(self, generate: Callable[[int], torch.Tensor]) -> dict:
        """Scores of ``generate(n_samples)``: ``fid``, ``kid``, ``kid_std``, ``features``, ``samples``,
        ``real_samples`` and, where defined, ``modes``, ``modes_total`` and ``kl`` or ``high_quality``."""
        with torch.no_grad():
            samples = generate(self.n_samples)
        out = self.fid.score_samples(samples)
        out.update(coverage(self.dataset, samples, self.classifier) or {})
        return out


@functools.lru_cache(maxsize=8)
def evaluator_for(dataset, data_dir, features, n_samples, cache_dir, device, inception_weights,
                  kid: bool = True) -> Evaluator:
    """The process's Evaluator for these arguments (built once: classifier, real features)."""
    return Evaluator(dataset, data_dir, features=features, n_samples=n_samples, cache_dir=cache_dir,
                     device=device, inception_weights=inception_weights, kid=kid)


def evaluate(generate: Callable[[int], torch.Tensor], dataset_name: str, data_dir: str | None = None, *,
             features: str = "auto", n_samples: int = DEFAULT_FID_SAMPLES, cache_dir: str | None = None,
             device: str = "cpu", inception_weights: str | None = None) -> dict:
    """FID of ``generate`` against the real train set of ``dataset_name``, plus mode coverage where defined.

    ``generate(n)`` must return n samples shaped like the data set's (images in
    [-1, 1]); it is called once per evaluation. ``features``: "auto" (points
    for mixtures, classifier for labelled images, inception for celeba/folder),
    "classifier", "inception" or "points". The ``Evaluator`` (extractor, real
    features) is kept per argument set for the life of the process, so calls
    during training only pay for generating and scoring. Returns the
    ``Evaluator.__call__`` dict.
    """
    return evaluator_for(dataset_name, data_dir, features, n_samples, cache_dir, str(device), inception_weights)(generate)


# --- caches --------------------------------------------------------------------

def _metrics_dir(cache_dir: str | None) -> Path:
    return Path(cache_dir or default_cache_dir()).expanduser() / "metrics"


def _fingerprint(data: Data, idx: torch.Tensor) -> str:
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


def _read_cache(path: Path) -> dict:
    """A cache file's contents, or {} when missing or unreadable (the caller then rebuilds it)."""
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else {}
    except Exception:  # torch raises many types for a truncated or foreign file
        return {}
    return cached if isinstance(cached, dict) else {}


def _write_cache(path: Path, obj: dict) -> None:
    """Atomically write ``obj``; a failure only costs the cache, so it warns instead of raising."""
    write_cache(path, obj, "metrics cache")
