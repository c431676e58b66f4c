"""Each channel of Colour MNIST scored against grey MNIST: the paper's partial mode collapse."""
import math

import numpy as np
import pytest
import torch
from helpers import write_idx

import tempered_gan.metrics as M
from tempered_gan.data.loaders import load_dataset
from tempered_gan.metrics.channels import collapse_of

SAMPLES = 200


@pytest.fixture(scope="module")
def bars_dir(tmp_path_factory):
    """A small MNIST whose class k is a bright horizontal bar at rows 2k+3 and 2k+4, of random length,
    place and brightness, on faint noise: classes a small classifier can tell apart, unlike the fixture
    of tests/helpers.py (write_mnist) whose images differ in one pixel."""
    folder = tmp_path_factory.mktemp("bars")
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 600), ("t10k", 200)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 30, (count, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            start = rng.integers(2, 10)
            images[i, 2 * k + 3:2 * k + 5, start:start + rng.integers(10, 17)] = rng.integers(180, 256)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8))
    return folder


def scores_of(samples: torch.Tensor, bars_dir, tmp_path) -> dict:
    settings = M.EvalSettings("color-mnist", str(bars_dir), n_samples=SAMPLES, cache_dir=str(tmp_path), kid=False)
    return M.evaluate(lambda n: samples[:n], settings)


def noise(n: int) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_real_colour_mnist_has_every_channel_like_the_data(bars_dir, tmp_path):
    real = load_dataset("color-mnist", str(bars_dir))
    scores = scores_of(real.batch(torch.arange(SAMPLES)), bars_dir, tmp_path)
    assert all(scores[k] <= scores["channel_fid_bound"] for k in M.CHANNEL_KEYS), scores
    assert scores["channels_like_data"] == 3 and scores["partial_collapse"] == 0


@pytest.mark.parametrize("good", [0, 1, 2])
def test_one_digit_channel_beside_two_noise_channels_is_a_partial_collapse(bars_dir, tmp_path, good):
    grey = load_dataset("mnist", str(bars_dir))
    channels = [noise(SAMPLES) for _ in range(3)]
    channels[good] = grey.batch(torch.arange(SAMPLES))
    scores = scores_of(torch.cat(channels, dim=1), bars_dir, tmp_path)
    fids = [scores[k] for k in M.CHANNEL_KEYS]
    assert fids[good] <= scores["channel_fid_bound"] < min(f for i, f in enumerate(fids) if i != good), scores
    assert scores["channels_like_data"] == 1 and scores["partial_collapse"] == 1


def test_a_channel_of_half_the_digits_fails_the_bound_and_noise_everywhere_is_no_partial_collapse(bars_dir, tmp_path):
    grey = load_dataset("mnist", str(bars_dir))
    few = grey.batch(torch.nonzero(grey.labels < 3).view(-1)[:SAMPLES])       # 3 of 10 digits only
    real = grey.batch(torch.arange(len(few)))
    scores = scores_of(torch.cat([real, few, real], dim=1), bars_dir, tmp_path)
    assert scores["channel_fid_g"] > scores["channel_fid_bound"] and scores["partial_collapse"] == 1
    everywhere = scores_of(torch.cat([noise(SAMPLES)] * 3, dim=1), bars_dir, tmp_path)
    assert everywhere["channels_like_data"] == 0 and everywhere["partial_collapse"] == 0


def test_a_diverged_generator_has_no_verdict():
    assert all(math.isnan(v) for v in collapse_of([1.0, math.nan, 2.0], 5.0).values())
    assert collapse_of([1.0, 9.0, 2.0], 5.0) == {"channels_like_data": 2, "partial_collapse": 1}


def test_grey_sets_have_no_channel_scores(tmp_path, mnist_dir):
    real = load_dataset("mnist", str(mnist_dir))
    scores = M.evaluate(lambda n: real.batch(torch.arange(n)),
                        M.EvalSettings("mnist", str(mnist_dir), n_samples=32, cache_dir=str(tmp_path), kid=False))
    assert not any(k.startswith("channel") or k == "partial_collapse" for k in scores)


def test_compare_report_counts_partly_collapsed_runs_and_tests_the_discordant_seeds(tmp_path):
    from tempered_gan.studies.arms import parse_arm
    from tempered_gan.studies.compare_report import RunResult, _collapse_section, summarise

    def run(arm, seed, collapsed):
        return RunResult(arm, seed, tmp_path, evals=[{"step": 10, "fid": 50.0, "partial_collapse": collapsed}])
    # none collapses on seeds 0-5, the lens on none: 6 discordant seeds, p = 2 / 2^6
    results = [run("none", s, 1) for s in range(6)] + [run("sine", s, 0) for s in range(6)]
    rows, _, _ = summarise(results, ["none", "sine"], 2.0)
    assert rows[0]["partial_collapse"].startswith("6/6") and rows[1]["partial_collapse"].startswith("0/6")
    arms = [parse_arm("none"), parse_arm("sine")]
    table = "\n".join(_collapse_section(results, arms, "none", {"none": "no lens", "sine": "lens"}))
    assert "| lens | 6 | 0 / 6 | 0 / 6 | 0.0312 |" in table
