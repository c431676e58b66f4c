"""FID / KID against the real data X, and mode coverage where the data set defines modes.

One way to score a generator (:mod:`.evaluation`): :func:`evaluate` with a frozen :class:`EvalSettings`
(``EvalSettings.of_run(cfg, device)`` for a run's). The :class:`Evaluator` behind
it (extractor, real features, coverage classifier) is built once per settings
for the life of the process, so evaluations during training only pay for
generating and scoring.

The rooms: :mod:`.features` (extractors, Inception weights, cache keys),
:mod:`.classifier` (the offline FID classifier and its training), :mod:`.fid`
(FID / KID, after torchmetrics), :mod:`.coverage` (modes) and :mod:`.channels` (each
channel of a colour-stacked set against its grey set: partial collapse). Feature kinds:

* ``classifier`` (default for labelled image sets, offline): numbers are NOT
  comparable with Inception FID;
* ``inception``: the paper's, its weights fetched into torch hub's cache on first use;
* ``dinov2``: DINOv2 ViT-S/14's CLS token (Stein et al. 2023's recommendation), its
  weights fetched the same way; needs timm;
* ``points``: the raw 2-D coordinates of the mixtures;
* ``auto``: points for the mixtures; classifier for the labelled sets at 32×32 (a folder is
  labelled when laid out by class); else inception.

Caches (``<cache_dir>/metrics``) are written atomically and keyed by hashes of
the exact data used; see docs/METRICS.md.
"""
from tempered_gan.config.train_config import DEFAULT_FID_SAMPLES, FEATURE_KINDS, default_fid_samples
from tempered_gan.metrics.channels import CHANNEL_KEYS, ChannelEvaluator
from tempered_gan.metrics.classifier import CLASSIFIER_VERSION, ClassifierFeatures, ClassifierNet, ClassifierSettings
from tempered_gan.metrics.coverage import (
    CLASS_COVERAGE_SETS,
    STACKED_MODES,
    class_coverage,
    coverage,
    mixture_coverage,
    stacked_mode_coverage,
)
from tempered_gan.metrics.evaluation import EvalSettings, Evaluator, evaluate, evaluator, feature_extractor
from tempered_gan.metrics.features import (
    DINOV2_FILE,
    INCEPTION_FILE,
    INCEPTION_FILE_FIDELITY,
    DinoV2Features,
    FeatureExtractor,
    IdentityFeatures,
    InceptionFeatures,
    dinov2_weights_path,
    inception_weights_path,
)
from tempered_gan.metrics.fid import FIDEvaluator

__all__ = ["CHANNEL_KEYS", "CLASSIFIER_VERSION", "ChannelEvaluator",
           "DEFAULT_FID_SAMPLES", "DINOV2_FILE", "FEATURE_KINDS", "INCEPTION_FILE",
           "INCEPTION_FILE_FIDELITY", "CLASS_COVERAGE_SETS", "STACKED_MODES", "ClassifierFeatures",
           "ClassifierNet", "ClassifierSettings", "DinoV2Features", "EvalSettings", "Evaluator", "FIDEvaluator",
           "FeatureExtractor", "IdentityFeatures", "InceptionFeatures", "class_coverage", "coverage",
           "default_fid_samples", "dinov2_weights_path", "evaluate", "evaluator", "feature_extractor",
           "inception_weights_path",
           "mixture_coverage", "stacked_mode_coverage"]
