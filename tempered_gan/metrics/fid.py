"""FID and KID of generated samples against a fixed real subset (the maths is torchmetrics').

Features are computed once per sample and handed to both metrics through an
identity "feature extractor" (``_Precomputed``), so FID and KID share one pass of
the network and the real features can be cached on disk as a plain ``(n, d)`` tensor.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import math
import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from tempered_gan.config.train_config import DEFAULT_FID_SAMPLES
from tempered_gan.data.loaders import Data
from tempered_gan.errors import UserError
from tempered_gan.metrics.features import CHUNK, FeatureExtractor, data_fingerprint, metrics_dir
from tempered_gan.util.atomic_files import read_cache, write_cache

REAL_SUBSET_SEED = 20180401
# Precision and recall with k = 3 (Kynkäänniemi et al. 2019), density and coverage with k = 5
# (Naeem et al. 2020): each paper's own k, on the same features as FID (prdc, Naeem et al.'s code).
PR_NEIGHBOURS, DC_NEIGHBOURS = 3, 5
FIDELITY_KEYS = ("precision", "recall", "density", "coverage")
KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED = 100, 1000, 0
# Inception Score with torch-fidelity's defaults (isc_splits, samples_shuffle, rng_seed), on Inception features only.
IS_SPLITS, IS_SEED = 10, 2020
IS_KEYS = ("inception_score", "inception_score_std")
# Metrics that never take part in a collective: scores are of this process's samples alone.
LOCAL = dict(sync_on_compute=False, distributed_available_fn=lambda: False)


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
        key = hashlib.sha256(f"{extractor.key}\0{real.name}\0{n}\0{data_fingerprint(real, idx)}".encode()).hexdigest()
        slot = hashlib.sha256(f"{extractor.key}\0{real.name}\0{len(real)}".encode()).hexdigest()[:12]
        path = metrics_dir(cache_dir) / f"real-{real.name}-n{n}-{slot}.pt"
        cached = read_cache(path)
        features = cached.get("features")
        self.real_from_cache = (cached.get("key") == key and isinstance(features, torch.Tensor)
                                and features.shape == (n, extractor.num_features))
        if not self.real_from_cache:
            features = torch.cat([self._features(real.batch(chunk)) for chunk in idx.split(CHUNK)])
            write_cache(path, {"key": key, "features": features}, "metrics cache")
        self.real_features = features
        dim = extractor.num_features
        # reset_real_features=False: reset() between scores clears only the generated side.
        # LOCAL: with torchrun only rank 0 evaluates; torchmetrics' default compute() would gather
        # over the process group, a collective the other ranks never join: --eval-every with torchrun would hang.
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

    def score(self, samples: torch.Tensor) -> dict:
        """FID/KID of ``samples`` (``(N, *real.shape)``, images in [-1, 1]) against the real features.

        Returns ``fid``, ``features`` (the extractor's description), ``samples``,
        ``real_samples`` and, with KID on, ``kid`` / ``kid_std`` (NaN when fewer
        samples than a KID subset). Features are computed in chunks of 256.
        """
        fake = self._fake_features(samples)
        out = {"fid": math.nan, "features": self.extractor.description, "samples": len(fake),
               "real_samples": len(self.real_features)}
        if self._kid is not None:
            out["kid"] = out["kid_std"] = math.nan
        out.update(dict.fromkeys(FIDELITY_KEYS, math.nan))
        scores_is = hasattr(self.extractor, "logits")
        if scores_is:
            out.update(dict.fromkeys(IS_KEYS, math.nan))
        if not torch.isfinite(fake).all():  # a diverged G: report NaN rather than fail the run
            return out
        out["fid"] = self._frechet(fake)
        if scores_is:
            out.update(inception_score(self.extractor.logits(fake).cpu()))
        out.update(fidelity_and_diversity(self.real_features, fake))
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


    def fid_only(self, samples: torch.Tensor) -> float:
        """The FID of ``samples`` alone (NaN for non-finite features): no KID, precision or recall."""
        fake = self._fake_features(samples)
        return self._frechet(fake) if torch.isfinite(fake).all() else math.nan

    def _fake_features(self, samples: torch.Tensor) -> torch.Tensor:
        if samples.shape[1:] != torch.Size(self.real.shape):
            raise ValueError(f"generated samples have shape {tuple(samples.shape[1:])}, "
                             f"the data set's are {self.real.shape}")
        if len(samples) < 2:
            raise UserError(f"FID needs at least 2 samples, got {len(samples)}")
        return torch.cat([self._features(chunk) for chunk in samples.split(CHUNK)])

    def _frechet(self, fake: torch.Tensor) -> float:
        self._fid.reset()
        self._fid.update(fake, real=False)
        return float(self._fid.compute())


def inception_score(logits: torch.Tensor) -> dict:
    """torch-fidelity's Inception Score of generated samples from their unbiased logits: 10 splits, its
    shuffle and seed; the mean and standard deviation over the splits. Meaningful for natural images
    only (docs/METRICS.md)."""
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    if len(logits) < IS_SPLITS:
        return dict.fromkeys(IS_KEYS, math.nan)
    scores = isc_features_to_metric(logits, splits=IS_SPLITS, shuffle=True, rng_seed=IS_SEED)
    return {"inception_score": float(scores[KEY_METRIC_ISC_MEAN]), "inception_score_std": float(scores[KEY_METRIC_ISC_STD])}


def fidelity_and_diversity(real: torch.Tensor, fake: torch.Tensor) -> dict:
    """Precision and recall (k = 3), density and coverage (k = 5) of ``fake`` against ``real``
    features, by ``prdc``. Precision and density: how much of the generated lies on the real
    manifold; recall and coverage: how much of the real the generated covers. NaN with fewer
    samples on either side than a neighbourhood needs."""
    from prdc import compute_prdc

    if min(len(real), len(fake)) < DC_NEIGHBOURS + 2:      # prdc needs k + 2 samples on each side
        return dict.fromkeys(FIDELITY_KEYS, math.nan)
    r, f = real.double().numpy(), fake.double().numpy()
    with contextlib.redirect_stdout(io.StringIO()):   # prdc prints the sample counts; eval's stdout is JSON
        pr, dc = compute_prdc(r, f, nearest_k=PR_NEIGHBOURS), compute_prdc(r, f, nearest_k=DC_NEIGHBOURS)
    return {"precision": float(pr["precision"]), "recall": float(pr["recall"]),
            "density": float(dc["density"]), "coverage": float(dc["coverage"])}
