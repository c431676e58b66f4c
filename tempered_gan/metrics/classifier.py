"""The FID classifier: a small CNN trained once on a labelled data set's own labels,
whose 128-d penultimate layer is the ``classifier`` feature of FID (offline, NOT
comparable with Inception FID), and whose digits count the modes of the colour sets.

Colour-stacked sets use the grey base set's classifier on each channel (3 x 128-d).
It is trained on first use (seeded, deterministic on CPU) and cached under
``<cache_dir>/metrics``; later calls load it while the data and settings are unchanged.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from tempered_gan.data.loaders import Data, load_dataset
from tempered_gan.data.registry import dataset_kind
from tempered_gan.errors import UserError
from tempered_gan.metrics.features import FeatureExtractor, data_fingerprint, metrics_dir
from tempered_gan.util.atomic_files import read_cache, write_cache

CLASSIFIER_VERSION = 1     # bump when the network or the training loop changes: old caches then no longer match


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



def classifier_features(dataset: str, data_dir: str | None, cache_dir: str | None,
                         settings: ClassifierSettings, device: torch.device,
                         skip_unreadable: bool = False) -> ClassifierFeatures:
    """Load the cached classifier for ``dataset`` (its grey base set if colour-stacked), or train and cache it."""
    base = dataset_kind(dataset).files
    train = load_dataset(base, data_dir, split="train", cache_dir=cache_dir, skip_unreadable=skip_unreadable)
    test = load_dataset(base, data_dir, split="test", cache_dir=cache_dir, skip_unreadable=skip_unreadable)
    if train.labels is None or train.labels.dim() != 1:
        raise UserError(f"{dataset} has no labels to train the FID classifier on; use --fid-features inception")
    classes = int(train.labels.max()) + 1
    n = min(settings.train_samples, len(train))
    subset = torch.randperm(len(train), generator=torch.Generator().manual_seed(settings.seed))[:n]
    key = hashlib.sha256(repr((CLASSIFIER_VERSION, base, dataclasses.asdict(settings))).encode())
    key.update(data_fingerprint(train, subset).encode())
    key.update(data_fingerprint(test, torch.arange(len(test))).encode())
    key = key.hexdigest()
    # One file per base set and settings: a changed data set overwrites its stale classifier.
    where = str(Path(data_dir).expanduser().resolve()) if base == "folder" else None   # one per folder
    slot = hashlib.sha256(repr((base, dataclasses.asdict(settings), *([where] if where else []))).encode()).hexdigest()[:12]
    path = metrics_dir(cache_dir) / f"classifier-{base}-{slot}.pt"
    net = ClassifierNet(train.shape[0], settings.width, settings.feature_dim, classes)
    accuracy = _load_classifier(net, read_cache(path), key)
    if accuracy is None:
        print(f"training the {base} FID classifier once (cached in {path})", file=sys.stderr)
        net, accuracy, seconds = _train_classifier(train, test, subset, settings, device)
        write_cache(path, {"key": key, "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
                           "accuracy": accuracy, "train_seconds": seconds, "settings": dataclasses.asdict(settings)},
                    "metrics cache")
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
        net = ClassifierNet(train.shape[0], settings.width, settings.feature_dim, int(train.labels.max()) + 1).to(device)
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


