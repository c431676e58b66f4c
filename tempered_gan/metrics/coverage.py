"""Mode coverage where the data set defines modes: the 2-D mixtures (VEEGAN /
PacGAN's 3-std criterion), the colour-stacked sets (1000 digit triples) and the
labelled grey sets (their 10 classes)."""
from __future__ import annotations

import torch
from torch import nn

from tempered_gan.data.loaders import MIXTURE_SPECS, mixture_centres
from tempered_gan.data.registry import DATASETS, dataset_kind
from tempered_gan.metrics.classifier import ClassifierFeatures
from tempered_gan.metrics.features import CHUNK

STACKED_MODES = 1000
# The grey sets whose classes the FID classifier reads (also the colour sets' mode reader).
CLASS_COVERAGE_SETS = tuple(n for n, d in DATASETS.items() if d.modes == "classes")
CLASSES = 10
# A class is covered when it gets at least this share of a fair share (1/10 of the samples):
# the classifier's errors put a few samples into every class, so "at least one sample" would
# count a generator of one garment as covering all ten (docs/METRICS.md).
CLASS_COVERED_SHARE = 0.5


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


def class_coverage(samples: torch.Tensor, classifier: nn.Module) -> dict:
    """Classes of a labelled grey set covered by ``samples`` ``(N, 1, 32, 32)`` in [-1, 1].

    ``classifier`` (or its ``ClassifierFeatures``) reads each sample's class. Returns
    ``modes`` (classes given at least ``CLASS_COVERED_SHARE`` of a fair share of the
    samples), ``modes_total`` (the classifier's classes: 10 for the grey sets) and
    ``kl`` = KL(p ‖ uniform over the classes), which grows as G collapses onto fewer classes."""
    if isinstance(classifier, ClassifierFeatures):
        classifier = classifier.net
    device = next(classifier.parameters(), torch.empty(0)).device
    with torch.no_grad():
        logits = [classifier(chunk.to(device)) for chunk in samples.split(CHUNK)]
    classes = logits[0].shape[1]   # 10 for the grey sets; a folder laid out by class has its own number
    ids = torch.cat([chunk.argmax(1).cpu() for chunk in logits])
    share = torch.bincount(ids, minlength=classes).double() / len(ids)
    p = share[share > 0]
    return {"modes": int((share >= CLASS_COVERED_SHARE / classes).sum()), "modes_total": classes,
            "kl": float((p * (p * classes).log()).sum())}


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


def coverage(data_name: str, samples: torch.Tensor, classifier: nn.Module | None = None,
             modes: str | None = None) -> dict | None:
    """Mode coverage of ``samples`` for ``data_name``; None where the data set defines no modes.

    Mixtures use ``mixture_coverage``; colour-stacked sets ``stacked_mode_coverage`` and
    the labelled grey sets (``CLASS_COVERAGE_SETS``) ``class_coverage``, both with
    ``classifier`` (required there: the grey set's classifier or its ``ClassifierFeatures``).
    """
    modes = modes or dataset_kind(data_name).modes   # a folder laid out by class: "classes"
    if modes == "mixture":
        return mixture_coverage(samples, data_name)
    if modes in ("stacked", "classes"):
        if classifier is None:
            raise ValueError(f"coverage of {data_name} needs the classifier of its grey set")
        return (stacked_mode_coverage if modes == "stacked" else class_coverage)(samples, classifier)
    return None

