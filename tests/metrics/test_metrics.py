"""FID / KID and mode coverage: closed forms, caches, offline Inception handling, a real classifier."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from helpers import NO_FASHION, fashion_mnist_dir
from torch import nn

from tempered_gan import metrics as M
from tempered_gan.data.loaders import MIXTURE_SPECS, Data, load_dataset, mixture_centres
from tempered_gan.errors import UserError
from tempered_gan.metrics import classifier as classifier_module

TINY = M.ClassifierSettings(train_samples=64, epochs=1, batch_size=32, width=4, feature_dim=16)


def gaussian(n: int, dim: int, seed: int, *, mixing_seed: int = 0, shift: float = 0.0) -> torch.Tensor:
    """n draws of a correlated Gaussian: N(shift, A A^T) with A drawn from ``mixing_seed``."""
    mixing = torch.randn(dim, dim, generator=torch.Generator().manual_seed(mixing_seed)) / math.sqrt(dim)
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) @ mixing + shift


def points_data(store: torch.Tensor, name: str = "fixture") -> Data:
    return Data(name, "points", store)


def rows(tensor: torch.Tensor):
    """A ``generate`` that returns the first n rows of ``tensor``."""
    return lambda n: tensor[:n]


def first_rows(evaluator, tensor: torch.Tensor) -> torch.Tensor:
    """The samples an evaluator of ``n_samples`` scores: the first n rows of ``tensor``."""
    return tensor[:evaluator.n_samples]


class CountingIdentity(M.IdentityFeatures):
    def __init__(self, dim: int):
        super().__init__(dim)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


# --- the Fréchet distance -------------------------------------------------------

def test_fid_matches_the_closed_form_on_sample_moments(tmp_path):
    real, fake = gaussian(20_000, 8, seed=1), gaussian(20_000, 8, seed=2, mixing_seed=1, shift=0.3)
    scores = M.FIDEvaluator(M.IdentityFeatures(8), points_data(real), 20_000, str(tmp_path), kid=False).score(fake)
    a, b = real.double().numpy(), fake.double().numpy()
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)   # unbiased, as torchmetrics
    root = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert scores["fid"] == pytest.approx(expected, rel=1e-6)
    assert scores["samples"] == scores["real_samples"] == 20_000
    assert "kid" not in scores


def test_fid_is_zero_on_the_same_samples_and_grows_as_shift_squared_times_dim(tmp_path):
    dim = 8
    real = gaussian(2000, dim, seed=3)
    evaluator = M.FIDEvaluator(M.IdentityFeatures(dim), points_data(real), 2000, str(tmp_path), kid=False)
    fids = [evaluator.score(first_rows(evaluator, real + shift))["fid"] for shift in (0.0, 0.1, 0.5, 1.0)]
    assert fids[0] == pytest.approx(0.0, abs=1e-6)
    for shift, fid in zip((0.1, 0.5, 1.0), fids[1:]):
        assert fid == pytest.approx(shift ** 2 * dim, rel=1e-4)   # same covariance: only the means differ
    assert fids == sorted(fids)


def test_kid_is_near_zero_for_the_same_distribution_grows_with_shift_and_repeats(tmp_path):
    # 500 samples: KID subsets of 500 keep this cheap; the state of the global RNG must not change.
    real, other = gaussian(500, 4, seed=4), gaussian(500, 4, seed=5)
    evaluator = M.FIDEvaluator(M.IdentityFeatures(4), points_data(real), 500, str(tmp_path))
    state = torch.get_rng_state()
    kids = [evaluator.score(first_rows(evaluator, other + shift))["kid"] for shift in (0.0, 0.3, 1.0)]
    assert torch.equal(state, torch.get_rng_state())
    assert abs(kids[0]) < 0.02 * kids[2] and kids[0] < kids[1] < kids[2]
    assert evaluator.score(first_rows(evaluator, other + 1.0))["kid"] == kids[2]     # the subsets are seeded: scores repeat


def test_non_finite_samples_score_nan_and_wrong_shapes_are_refused(tmp_path):
    real = gaussian(500, 2, seed=5)
    evaluator = M.FIDEvaluator(M.IdentityFeatures(2), points_data(real), 500, str(tmp_path))
    bad = real.clone()
    bad[3, 0] = float("nan")
    scores = evaluator.score(first_rows(evaluator, bad))
    assert math.isnan(scores["fid"]) and math.isnan(scores["kid"])
    with pytest.raises(ValueError, match="shape"):
        evaluator.score(torch.zeros(evaluator.n_samples, 3))


def test_real_features_are_cached_per_n_and_rebuilt_when_the_data_changes(tmp_path):
    real = gaussian(3000, 4, seed=6)
    first = CountingIdentity(4)
    assert not M.FIDEvaluator(first, points_data(real), 1000, str(tmp_path)).real_from_cache and first.calls > 0

    again = CountingIdentity(4)
    evaluator = M.FIDEvaluator(again, points_data(real), 1000, str(tmp_path))
    assert evaluator.real_from_cache and again.calls == 0

    other_n = CountingIdentity(4)
    assert not M.FIDEvaluator(other_n, points_data(real), 2000, str(tmp_path)).real_from_cache and other_n.calls > 0
    assert len(list((tmp_path / "metrics").glob("real-*.pt"))) == 2

    changed = real.clone()
    changed[:, 0] += 1.0
    assert not M.FIDEvaluator(CountingIdentity(4), points_data(changed), 1000, str(tmp_path)).real_from_cache


def test_sample_sizes_follow_the_paper():
    assert M.default_fid_samples("gan") == M.default_fid_samples("lsgan") == 4096
    assert M.default_fid_samples("wgan-gp") == 10_000
    with pytest.raises(UserError):
        M.default_fid_samples("hinge")


# --- mode coverage -------------------------------------------------------------

class DigitFromBrightness(nn.Module):
    """A stub classifier: a grey image whose pixels all equal -1 + 0.2 k reads as digit k."""

    def forward(self, x):
        digit = ((x.mean(dim=(1, 2, 3)) + 1) / 0.2).round().long().clamp(0, 9)
        return nn.functional.one_hot(digit, 10).float()


def stacked(triplets: torch.Tensor) -> torch.Tensor:
    """Colour images whose R, G, B channels read as the digits in ``triplets`` (N, 3) under the stub."""
    return (-1 + 0.2 * triplets.float())[:, :, None, None].expand(-1, -1, 32, 32).contiguous()


def test_stacked_coverage_counts_all_1000_modes_and_a_single_one():
    all_modes = torch.cartesian_prod(torch.arange(10), torch.arange(10), torch.arange(10))
    balanced = M.stacked_mode_coverage(stacked(all_modes.repeat(2, 1)), DigitFromBrightness())
    assert balanced["modes"] == 1000 and balanced["kl"] == pytest.approx(0.0, abs=1e-12)
    single = M.stacked_mode_coverage(stacked(torch.tensor([[3, 1, 4]]).repeat(500, 1)), DigitFromBrightness())
    assert single["modes"] == 1 and single["kl"] == pytest.approx(math.log(1000))
    half = M.stacked_mode_coverage(stacked(all_modes[:500]), DigitFromBrightness())
    assert half["modes"] == 500 and half["kl"] == pytest.approx(math.log(2))


def grey(digits: torch.Tensor) -> torch.Tensor:
    """Grey images that read as ``digits`` (N,) under the stub."""
    return (-1 + 0.2 * digits.float())[:, None, None, None].expand(-1, 1, 32, 32).contiguous()


def test_class_coverage_counts_classes_with_half_a_fair_share():
    balanced = M.class_coverage(grey(torch.arange(10).repeat(50)), DigitFromBrightness())
    assert balanced == {"modes": 10, "modes_total": 10, "kl": pytest.approx(0.0, abs=1e-12)}
    single = M.class_coverage(grey(torch.full((400,), 7)), DigitFromBrightness())
    assert single["modes"] == 1 and single["kl"] == pytest.approx(math.log(10))
    # One class and a classifier's stray reads: 4 % in each of 3 others is under half a fair share (5 %).
    stray = torch.cat([torch.full((88,), 2), torch.tensor([0, 1, 3]).repeat_interleave(4)])
    assert M.class_coverage(grey(stray), DigitFromBrightness())["modes"] == 1
    two = M.class_coverage(grey(torch.tensor([4, 5]).repeat(100)), DigitFromBrightness())
    assert two["modes"] == 2 and two["kl"] == pytest.approx(math.log(5))


def test_mixture_coverage_on_centres_one_centre_and_far_away():
    for name in MIXTURE_SPECS:
        centres = mixture_centres(name)
        on_all = M.mixture_coverage(centres.repeat(3, 1), name)
        assert on_all == {"modes": len(centres), "modes_total": len(centres), "high_quality": 1.0}
        one = M.mixture_coverage(centres[:1].repeat(50, 1), name)
        assert one["modes"] == 1 and one["high_quality"] == 1.0
        far = M.mixture_coverage(centres + 50, name)
        assert far["modes"] == 0 and far["high_quality"] == 0.0
    std = MIXTURE_SPECS["mixture-ring8"].std
    edge = mixture_centres("mixture-ring8") + torch.tensor([2.9 * std, 0.0])   # inside 3 std; 3.1 std is not
    assert M.mixture_coverage(edge, "mixture-ring8")["high_quality"] == 1.0
    assert M.mixture_coverage(edge + torch.tensor([0.2 * std, 0.0]), "mixture-ring8")["high_quality"] == 0.0
    assert M.mixture_coverage(mixture_centres("mixture-ring8"), "mixture-ring8", min_samples=2)["modes"] == 0


def test_coverage_dispatches_by_data_set():
    points = mixture_centres("mixture-ring8")
    assert M.coverage("mixture-ring8", points)["modes"] == 8
    assert M.coverage("color-mnist", stacked(torch.tensor([[1, 2, 3]])), DigitFromBrightness())["modes"] == 1
    assert M.coverage("fashion-mnist", grey(torch.tensor([1, 2])), DigitFromBrightness())["modes"] == 2
    assert M.coverage("cifar10", torch.zeros(2, 3, 32, 32)) is None
    for name in ("color-mnist", "mnist"):
        with pytest.raises(ValueError, match="classifier"):
            M.coverage(name, torch.zeros(2, 3 if name.startswith("color") else 1, 32, 32))


# --- the classifier and its cache ----------------------------------------------

@pytest.fixture()
def mnist_dir(tmp_path):
    from helpers import write_mnist
    return write_mnist(tmp_path / "mnist", n=64)


def never_train(*args, **kwargs):
    raise AssertionError("the classifier was retrained")


def assert_same_features(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """The same net's features of the same images, computed in batches of different shapes.

    Equal only to float32 rounding: for another batch shape oneDNN or MKL may pick another kernel,
    which adds the same products (at most 256 per feature and layer here) in another order. Measured
    over batches of 1 to 40 images, AVX2 and AVX-512, 1 and 2 threads: at most 2.4e-7 of the largest
    feature apart, a few units of 2^-24 (benchmarks/bench_rounding.py; 2e-8 for this fixture's features
    of up to 0.07). The tolerance, 1e-5 of the largest feature, is 40 times that, and 30 times below the
    smallest difference between two of this fixture's images (2e-5, 3e-4 of the largest feature): the
    features of another image or channel still fail.
    """
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5 * expected.abs().max().item())


def test_classifier_is_cached_reused_shared_with_colour_and_rebuilt_when_data_change(tmp_path, mnist_dir, monkeypatch):
    cache = str(tmp_path / "cache")
    first = M.feature_extractor("classifier", "mnist", str(mnist_dir), cache_dir=cache, classifier=TINY)
    assert first.num_features == 16 and 0.0 <= first.accuracy <= 1.0 and "accuracy" in first.description
    x = load_dataset("mnist", str(mnist_dir)).batch(torch.arange(8))

    monkeypatch.setattr(classifier_module, "_train_classifier", never_train)
    again = M.feature_extractor("classifier", "mnist", str(mnist_dir), cache_dir=cache, classifier=TINY)
    with torch.no_grad():
        assert torch.equal(first(x), again(x))
    assert again.key == first.key
    colour = M.feature_extractor("classifier", "color-mnist", str(mnist_dir), cache_dir=cache, classifier=TINY)
    assert colour.num_features == 48 and colour.key != first.key     # the grey net, once per channel
    channels = (x, x.flip(0), -x)                                     # another grey batch in each channel
    with torch.no_grad():
        per_channel = colour(torch.cat(channels, dim=1))
        for i, grey in enumerate(channels):                           # a batch of 24 images against one of 8
            assert_same_features(per_channel[:, 16 * i:16 * (i + 1)], first(grey))

    from helpers import write_mnist
    write_mnist(mnist_dir, n=80)                                      # the data change: retrain
    with pytest.raises(AssertionError, match="retrained"):
        M.feature_extractor("classifier", "mnist", str(mnist_dir), cache_dir=cache, classifier=TINY)
    monkeypatch.undo()
    rebuilt = M.feature_extractor("classifier", "mnist", str(mnist_dir), cache_dir=cache, classifier=TINY)
    assert rebuilt.key != first.key
    assert len(list(Path(cache, "metrics").glob("classifier-*.pt"))) == 1   # the stale file was replaced


def test_classifier_training_is_deterministic(tmp_path, mnist_dir):
    nets = [M.feature_extractor("classifier", "mnist", str(mnist_dir), cache_dir=str(tmp_path / c), classifier=TINY).net
            for c in ("a", "b")]
    for (name, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values()):
        assert torch.equal(a, b), name


def test_evaluate_on_colour_fixture_gives_fid_and_mode_coverage(tmp_path, mnist_dir):
    real = load_dataset("color-mnist", str(mnist_dir))
    scores = M.evaluate(lambda n: real.batch(torch.arange(n)),
                        M.EvalSettings("color-mnist", str(mnist_dir), n_samples=32, cache_dir=str(tmp_path)))
    assert math.isfinite(scores["fid"]) and scores["samples"] == 32
    assert scores["modes_total"] == 1000 and 1 <= scores["modes"] <= 32 and scores["kl"] >= 0
    assert "per channel" in scores["features"]


def test_evaluate_on_a_mixture_reuses_its_evaluator(tmp_path):
    ring = load_dataset("mixture-ring8", split="test")
    generate = rows(ring.batch(torch.arange(1000)))
    hits = M.evaluator.cache_info().hits
    settings = M.EvalSettings("mixture-ring8", n_samples=1000, cache_dir=str(tmp_path))
    first = M.evaluate(generate, settings)
    assert M.evaluate(generate, M.EvalSettings("mixture-ring8", n_samples=1000, cache_dir=str(tmp_path))) == first
    assert M.evaluator.cache_info().hits == hits + 1
    assert first["modes"] == 8 and first["high_quality"] > 0.95 and first["fid"] < 0.05
    assert first["features"].startswith("raw 2-d")


@pytest.mark.parametrize("kind, dataset, message", [
    ("points", "mnist", "points does not apply"), ("classifier", "mixture-ring8", "does not apply"),
    ("classifier", "celeba", "no labels"), ("pixels", "mnist", "unknown FID features")])
def test_feature_kinds_that_do_not_fit_the_data_set_are_refused(kind, dataset, message):
    with pytest.raises(UserError, match=message):
        M.feature_extractor(kind, dataset)


# --- Inception: offline only -----------------------------------------------------

def test_missing_inception_weights_give_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TEMPERED_GAN_INCEPTION", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(UserError) as info:
        M.feature_extractor("inception", "fashion-mnist")
    message = str(info.value)
    assert "\n" not in message and M.INCEPTION_FILE in message
    assert str(tmp_path / "hub" / "checkpoints" / M.INCEPTION_FILE) in message
    assert "--fid-features classifier" in message and "nothing is downloaded" in message

    monkeypatch.setenv("TEMPERED_GAN_INCEPTION", str(tmp_path / "env.pth"))
    with pytest.raises(UserError, match="env.pth"):
        M.feature_extractor("inception", "cifar10")
    with pytest.raises(UserError, match="given.pth"):
        M.feature_extractor("inception", "cifar10", inception_weights=str(tmp_path / "given.pth"))


def test_inception_weights_that_are_not_a_state_dict_are_refused(tmp_path):
    path = tmp_path / M.INCEPTION_FILE
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable"):
        M.feature_extractor("inception", "cifar10", inception_weights=str(path))
    torch.save({"fc.weight": torch.zeros(1)}, path)
    with pytest.raises(UserError, match="not the FID Inception weights"):
        M.feature_extractor("inception", "cifar10", inception_weights=str(path))


def test_inception_features_load_a_local_file_without_network(tmp_path, monkeypatch):
    fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    # Random weights with the real layout stand in for the real file, which is not on this machine.
    with monkeypatch.context() as patch:
        patch.setattr(fidelity, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        state = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict()
    path = tmp_path / M.INCEPTION_FILE
    torch.save(state, path)
    del state
    monkeypatch.setattr(fidelity, "load_state_dict_from_url", never_train)   # any download attempt fails the test
    monkeypatch.setenv("TEMPERED_GAN_INCEPTION", str(path))
    extractor = M.feature_extractor("inception", "fashion-mnist")
    with torch.no_grad():
        features = extractor(torch.rand(2, 1, 32, 32) * 2 - 1)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    assert extractor.key.startswith("inception-") and "comparable with published FID" in extractor.description


# --- the real classifier on Fashion-MNIST -----------------------------------------

@pytest.mark.skipif(fashion_mnist_dir() is None, reason=NO_FASHION)
def test_fashion_classifier_separates_real_from_noise(tmp_path):
    # A 10k-image, one-epoch classifier keeps this test quick; the default trains longer (docs/METRICS.md).
    quick = M.ClassifierSettings(train_samples=10_000, epochs=1, batch_size=64)
    extractor = M.feature_extractor("classifier", "fashion-mnist", cache_dir=str(tmp_path), classifier=quick)
    assert extractor.accuracy > 0.8
    test = load_dataset("fashion-mnist", split="test")
    evaluator = M.FIDEvaluator(extractor, load_dataset("fashion-mnist"), 2000, str(tmp_path), kid=False)
    real = evaluator.score(first_rows(evaluator, test.batch(torch.arange(2000))))["fid"]
    noise = evaluator.score(torch.rand(evaluator.n_samples, 1, 32, 32) * 2 - 1)["fid"]
    assert real < 5 and noise > 50 * real


def test_precision_recall_density_coverage_are_wired_the_right_way_round(tmp_path):
    """Generated = real gives precision and recall of 1; every sample at one real point is all
    precision (it lies on the real manifold) and no recall or coverage (it covers one real point)."""
    from tempered_gan.data.loaders import load_dataset
    from tempered_gan.metrics.fid import REAL_SUBSET_SEED, FIDEvaluator

    real = load_dataset("mixture-ring8")
    fid = FIDEvaluator(M.feature_extractor("points", "mixture-ring8"), real, n_samples=512, cache_dir=str(tmp_path),
                       kid=False)
    idx = torch.randperm(len(real), generator=torch.Generator().manual_seed(REAL_SUBSET_SEED))[:512]
    same = fid.score(real.batch(idx))
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0 and same["density"] == pytest.approx(1.0)
    collapsed = fid.score(real.batch(idx[:1]).expand(512, 2).clone())
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.01 and collapsed["coverage"] < 0.02
    shifted = fid.score(real.batch(idx) + 10.0)                       # off the manifold altogether
    assert shifted["precision"] == shifted["density"] == shifted["recall"] == shifted["coverage"] == 0.0


def test_eval_prints_precision_recall_density_and_coverage(tmp_path, capsys):
    from tempered_gan.cli.main import main
    out = tmp_path / "run"
    assert main(["train", "--steps", "2", "--k", "1", "--batch-size", "32", "--width", "8", "--lens-width", "4",
                 "--lens-blocks", "1", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--fid-samples", "256"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert all(0 <= scores[k] <= 1 for k in ("precision", "recall", "coverage")) and scores["density"] >= 0


def test_an_unlabelled_folder_offline_is_told_where_the_inception_file_goes_not_sent_in_a_circle(tmp_path, capsys,
                                                                                                monkeypatch):
    from PIL import Image

    from tempered_gan.cli.main import main
    for i in range(12):
        Image.fromarray(np.full((40, 48, 3), 20 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("TEMPERED_GAN_INCEPTION", raising=False)
    monkeypatch.setenv("TEMPERED_GAN_OFFLINE", "1")
    base = ["train", "--dataset", "folder", "--data-dir", str(tmp_path), "--steps", "2", "--eval-every", "2",
            "--batch-size", "4", "--width", "4", "--lens-width", "4", "--lens-blocks", "1", "--no-progress",
            "--out", str(tmp_path / "run")]
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    assert main(base) == 2                                          # auto is Inception for an unlabelled folder
    err = capsys.readouterr().err
    assert f"put the file at {hub / M.INCEPTION_FILE}" in err and "--fid-features classifier" not in err
    assert main([*base, "--fid-features", "classifier"]) == 2
    err = capsys.readouterr().err
    assert "use --fid-features inception" in err and str(hub) in err
    assert not (tmp_path / "run").exists()


def test_inception_score_comes_with_the_inception_features_offline(tmp_path, monkeypatch):
    fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    from torch_fidelity.metric_isc import isc_features_to_metric
    with monkeypatch.context() as patch:     # random weights with the real layout stand in for the real file
        patch.setattr(fidelity, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        state = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict()
    path = tmp_path / M.INCEPTION_FILE
    torch.save(state, path)
    monkeypatch.setattr(fidelity, "load_state_dict_from_url", never_train)
    from helpers import write_cifar
    data_dir = write_cifar(tmp_path / "cifar", n=20).parent
    fake = torch.rand(20, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    settings = M.EvalSettings("cifar10", str(data_dir), features="inception", n_samples=20, cache_dir=str(tmp_path),
                              inception_weights=str(path), kid=False)
    scores = M.evaluate(lambda n: fake[:n], settings)
    extractor = M.evaluator(settings).extractor
    with torch.no_grad():
        logits = extractor(fake) @ extractor.net.fc.weight.T            # torch-fidelity's logits_unbiased
    expected = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    assert scores["inception_score"] == pytest.approx(expected["inception_score_mean"], rel=1e-9)
    assert scores["inception_score_std"] == pytest.approx(expected["inception_score_std"], abs=1e-9)
    classifier = M.evaluate(lambda n: fake[:n], M.EvalSettings("cifar10", str(data_dir), features="classifier",
                                                              n_samples=20, cache_dir=str(tmp_path), kid=False))
    assert "inception_score" not in classifier                                  # Inception features only


class LogitFeatures(M.FeatureExtractor):
    """A stand-in with Inception's interface: features, and logits read from them (a fixed projection)."""

    def __init__(self):
        super().__init__()
        self.num_features, self.key, self.description = 8, "stand-in", "stand-in"
        self.proj = torch.nn.Linear(3 * 32 * 32, 8)
        self.head = torch.randn(8, 20, generator=torch.Generator().manual_seed(3))

    def forward(self, x):
        return self.proj(x.flatten(1))

    def logits(self, features):
        return features @ self.head * 5


def test_the_inception_score_is_of_the_generated_samples_with_torch_fidelitys_splits(tmp_path):
    from torch_fidelity.metric_isc import isc_features_to_metric

    from tempered_gan.data.loaders import Data
    torch.manual_seed(0)
    extractor = LogitFeatures()
    real = Data("stand-in", "image", torch.zeros(200, 3, 32, 32))               # every real image alike: IS 1
    evaluator = M.FIDEvaluator(extractor, real, 200, str(tmp_path), kid=False)
    fake = torch.rand(200, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    scores = evaluator.score(fake)
    with torch.no_grad():
        on_fake = isc_features_to_metric(extractor.logits(extractor(fake)), 10, True, 2020)
        on_real = isc_features_to_metric(extractor.logits(extractor(real.batch(torch.arange(200)))), 10, True, 2020)
    assert scores["inception_score"] == pytest.approx(on_fake["inception_score_mean"], rel=1e-9)
    assert scores["inception_score_std"] == pytest.approx(on_fake["inception_score_std"], rel=1e-6)
    assert on_real["inception_score_mean"] == pytest.approx(1.0) and scores["inception_score"] > 1.5
    assert math.isnan(evaluator.score(torch.full_like(fake, math.nan))["inception_score"])
