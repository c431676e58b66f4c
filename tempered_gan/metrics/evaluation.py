"""Scoring a generator: the feature extractor a run's settings ask for, and the :class:`Evaluator` of one
:class:`EvalSettings` (extractor, real features, coverage classifier, per-channel scores), built once per
settings for the life of the process (:func:`evaluator`); :func:`evaluate` is the one entry point."""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import torch

from tempered_gan.config.train_config import DEFAULT_FID_SAMPLES, FEATURE_KINDS, TrainConfig
from tempered_gan.data.loaders import has_labels, load_dataset
from tempered_gan.data.registry import dataset_kind
from tempered_gan.errors import UserError
from tempered_gan.metrics.channels import ChannelEvaluator
from tempered_gan.metrics.classifier import (
    ClassifierFeatures,
    ClassifierSettings,
    classifier_features,
)
from tempered_gan.metrics.coverage import (
    coverage,
)
from tempered_gan.metrics.features import (
    CLASSIFIER_INSTEAD,
    DINOV2_FILE,
    INCEPTION_FILE,
    FeatureExtractor,
    IdentityFeatures,
    dinov2_features,
    inception_features,
)
from tempered_gan.metrics.fid import FIDEvaluator


def feature_extractor(kind: str, dataset: str, data_dir: str | None = None, *, cache_dir: str | None = None,
                      inception_weights: str | None = None, dinov2_weights: str | None = None,
                      device: str | torch.device = "cpu", classifier: ClassifierSettings | None = None,
                      resolution: int = 32, skip_unreadable: bool = False) -> FeatureExtractor:
    """The feature extractor ``kind`` (one of FEATURE_KINDS) for ``dataset``, on ``device``.

    The classifier is trained on first use (``classifier``: how; default
    ``ClassifierSettings()``) and cached (:mod:`.classifier`); Inception and DINOv2
    weights are fetched on first use unless offline (:func:`inception_weights_path`,
    :func:`dinov2_weights_path`).
    """
    kind = _resolve_kind(kind, dataset, data_dir, resolution)
    if kind == "points":
        extractor: FeatureExtractor = IdentityFeatures(2)
    elif kind == "inception":
        extractor = inception_features(inception_weights, CLASSIFIER_INSTEAD if _classifier_works(
            dataset, data_dir, resolution) else _why_no_classifier(dataset, resolution))
    elif kind == "dinov2":
        extractor = dinov2_features(dinov2_weights, "or use --fid-features inception" + (
            " or classifier" if _classifier_works(dataset, data_dir, resolution) else ""))
    else:
        extractor = classifier_features(dataset, data_dir, cache_dir, classifier or ClassifierSettings(),
                                        torch.device(device), skip_unreadable=skip_unreadable)
    return extractor.to(device).eval()




def hub_checkpoints() -> Path:
    """torch hub's checkpoint folder, where fetched weights go."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _classifier_works(dataset: str, data_dir: str | None, resolution: int) -> bool:
    """The classifier features need class labels and 32×32 images (the net they come from)."""
    return not dataset_kind(dataset).points and resolution == 32 and has_labels(dataset, data_dir)


def _why_no_classifier(dataset: str, resolution: int) -> str:
    if resolution != 32:
        return f"the classifier features work at 32×32 only, not at --resolution {resolution}"
    layout = " (a folder has labels when it holds one subfolder of images per class)" if dataset == "folder" else ""
    return f"{dataset} has no labels to train the classifier features on{layout}"


def _resolve_kind(kind: str, dataset: str, data_dir: str | None = None, resolution: int = 32) -> str:
    if kind not in FEATURE_KINDS:
        raise UserError(f"unknown FID features {kind!r}; choose one of: {', '.join(FEATURE_KINDS)}")
    points = dataset_kind(dataset).points
    if kind == "auto":
        return "points" if points else "classifier" if _classifier_works(dataset, data_dir, resolution) else "inception"
    if points != (kind == "points"):
        raise UserError(f"--fid-features {kind} does not apply to {dataset}; use "
                        f"{'points' if points else 'classifier, inception or dinov2'} (or auto)")
    if kind == "classifier" and not _classifier_works(dataset, data_dir, resolution):
        raise UserError(f"{_why_no_classifier(dataset, resolution)}; use --fid-features inception or dinov2 "
                        f"(their weights, {INCEPTION_FILE} or {DINOV2_FILE}, are fetched on first use into "
                        f"{hub_checkpoints()}, or name a local file with --inception-weights or --dinov2-weights PATH)")
    return kind


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What an evaluation measures and where: the key of the process's evaluators.

    ``features``: see the module's docstring; ``n_samples`` generated (and real)
    samples per FID; ``kid=False`` skips KID, the costly part on 2-D data (FID
    and coverage are the same either way). FID is always against the train split of X.
    """

    dataset: str
    data_dir: str | None = None
    features: str = "auto"
    n_samples: int = DEFAULT_FID_SAMPLES
    cache_dir: str | None = None
    device: str = "cpu"
    inception_weights: str | None = None
    kid: bool = True
    resolution: int = 32
    skip_unreadable: bool = False
    dinov2_weights: str | None = None

    @classmethod
    def of_run(cls, cfg: TrainConfig, device: str | torch.device, kid: bool = True) -> "EvalSettings":
        """A run's FID settings (``--fid-features``, ``--fid-samples``, the weights files) on ``device``."""
        return cls(cfg.dataset, cfg.data_dir, cfg.fid_features, cfg.fid_samples, None, str(device),
                   cfg.inception_weights, kid, cfg.resolution, cfg.skip_unreadable, cfg.dinov2_weights)


class Evaluator:
    """Everything needed to score generators for one :class:`EvalSettings`:
    extractor, real features, coverage classifier. Build it through :func:`evaluator`."""

    def __init__(self, settings: EvalSettings):
        s = self.settings = settings
        self.extractor = feature_extractor(s.features, s.dataset, s.data_dir, cache_dir=s.cache_dir,
                                           inception_weights=s.inception_weights,
                                           dinov2_weights=s.dinov2_weights, device=s.device,
                                           resolution=s.resolution, skip_unreadable=s.skip_unreadable)
        real = load_dataset(s.dataset, s.data_dir, split="train", cache_dir=s.cache_dir, resolution=s.resolution,
                            skip_unreadable=s.skip_unreadable)
        self.fid = FIDEvaluator(self.extractor, real, s.n_samples, s.cache_dir, kid=s.kid)
        self.classifier = None
        # A folder laid out by class has its classes as modes, where the classifier works (32×32).
        self.modes = dataset_kind(s.dataset).modes
        if s.dataset == "folder" and _classifier_works(s.dataset, s.data_dir, s.resolution):
            self.modes = "classes"
        if self.modes in ("stacked", "classes"):  # needed even for Inception FID
            self.classifier = (self.extractor if isinstance(self.extractor, ClassifierFeatures) else
                               feature_extractor("classifier", s.dataset, s.data_dir, cache_dir=s.cache_dir,
                                                 skip_unreadable=s.skip_unreadable,
                                                 device=s.device))
        self.channels = None
        if self.modes == "stacked":   # each channel against the grey set (.channels), whatever the FID features
            base = dataset_kind(s.dataset).files
            grey = feature_extractor("classifier", base, s.data_dir, cache_dir=s.cache_dir, device=s.device)
            self.channels = ChannelEvaluator(grey, load_dataset(base, s.data_dir, split="train", cache_dir=s.cache_dir),
                                             s.n_samples, s.cache_dir)

    def __call__(self, generate: Callable[[int], torch.Tensor]) -> dict:
        """Scores of ``generate(n_samples)`` (called once: a seeded generator such as
        ``Trainer.generate`` would repeat its samples if called per chunk): ``fid``,
        ``kid``, ``kid_std``, ``features``, ``samples``, ``real_samples`` and, where
        defined, ``modes``, ``modes_total`` and ``kl`` or ``high_quality``; for the
        colour-stacked sets also the per-channel scores of :mod:`.channels`."""
        with torch.no_grad():
            samples = generate(self.settings.n_samples)
        out = self.fid.score(samples)
        out.update(coverage(self.settings.dataset, samples, self.classifier, modes=self.modes) or {})
        if self.channels is not None:
            out.update(self.channels(samples))
        return out


@functools.lru_cache(maxsize=8)
def evaluator(settings: EvalSettings) -> Evaluator:
    """The process's Evaluator for ``settings`` (built once: classifier, real features)."""
    return Evaluator(settings)


def evaluate(generate: Callable[[int], torch.Tensor], settings: EvalSettings) -> dict:
    """FID of ``generate`` against the real train set, plus mode coverage where defined.

    ``generate(n)`` must return n samples shaped like the data set's (images in
    [-1, 1]). Returns the :meth:`Evaluator.__call__` dict.
    """
    return evaluator(settings)(generate)
