"""sample --format png|npz: N samples for other tools, the very ones eval scores; FID cross-checked with torch-fidelity."""
import json

import numpy as np
import pytest
import torch
from helpers import TINY_IMAGES_ARGS, TINY_POINTS_ARGS
from PIL import Image

from tempered_gan.cli.main import main
from tempered_gan.metrics import EvalSettings, evaluator

TINY = [*TINY_POINTS_ARGS, "--log-every", "2",
        "--no-progress"]
TINY_MNIST = [*TINY_IMAGES_ARGS, "--log-every", "1", "--no-progress"]


def run(*argv):
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ring") / "run"
    assert run("train", "--steps", 4, "--k", 2, "--fid-samples", 512, "--out", out, *TINY) == 0
    return out


def test_npz_of_points_holds_the_samples_eval_scores_and_torch_fidelity_agrees(ring_run, tmp_path, capsys):
    """A peer's FID (torch-fidelity's statistics and Fréchet distance) on the exported set, against the
    same real features, is our eval's FID: the export is eval's own samples."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    path = tmp_path / "points.npz"
    assert run("sample", ring_run, "--format", "npz", "--out", path) == 0
    assert capsys.readouterr().out.strip() == str(path)
    points = np.load(path)["arr_0"]
    assert points.shape == (512, 2) and points.dtype == np.float32          # the run's --fid-samples by default
    assert run("eval", ring_run) == 0
    ours = json.loads(capsys.readouterr().out)["fid"]
    cfg = json.loads((ring_run / "config.json").read_text())
    real = evaluator(EvalSettings(cfg["dataset"], None, "auto", 512)).fid.real_features.double().numpy()
    theirs = fid_statistics_to_metric(fid_features_to_statistics(torch.from_numpy(points).double()),
                                      fid_features_to_statistics(torch.from_numpy(real)), verbose=False)
    assert theirs["frechet_inception_distance"] == pytest.approx(ours, rel=1e-4, abs=1e-6)


def test_images_export_as_uint8_nhwc_and_as_a_folder_of_pngs(tmp_path, mnist_dir, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY_MNIST, "--data-dir", mnist_dir, "--steps", 2, "--k", 1, "--out", out) == 0
    npz, folder = tmp_path / "s.npz", tmp_path / "pngs"
    assert run("sample", out, "--format", "npz", "--n", 10, "--out", npz) == 0
    array = np.load(npz)["arr_0"]
    assert array.shape == (10, 32, 32, 1) and array.dtype == np.uint8 and array.max() > array.min()
    assert run("sample", out, "--format", "png", "--n", 10, "--out", folder) == 0
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(10)]
    assert np.array_equal(np.asarray(Image.open(files[3])), array[3, ..., 0])   # the same samples, losslessly
    capsys.readouterr()
    assert run("sample", out, "--format", "npz", "--n", 10, "--out", npz) == 2         # never overwrites
    assert "already exists" in capsys.readouterr().err
    assert run("sample", out, "--format", "npz") == 0                                  # default place and count
    default = out / "samples" / "export_0000002.npz"
    assert np.load(default)["arr_0"].shape[0] == json.loads((out / "config.json").read_text())["fid_samples"]


def test_points_cannot_be_pngs_and_n_must_be_positive(ring_run, tmp_path, capsys):
    assert run("sample", ring_run, "--format", "png", "--out", tmp_path / "p") == 2
    assert "export them with --format npz" in capsys.readouterr().err
    assert run("sample", ring_run, "--format", "npz", "--n", 0, "--out", tmp_path / "p.npz") == 2
    assert "--n must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "p").exists() and not (tmp_path / "p.npz").exists()
