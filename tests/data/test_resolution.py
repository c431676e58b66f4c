"""Your own images at your resolution: --resolution 64|128 for folders and CelebA, a folder
laid out by class (labels, classifier FID offline, classes as modes), unreadable files
counted or skipped, and the decoded cache read through a memory map."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tempered_gan.cli.main import main
from tempered_gan.data import image_folder
from tempered_gan.data.loaders import load_dataset
from tempered_gan.errors import UserError
from tempered_gan.method.nets import make_nets

TINY = ["--batch-size", "8", "--width", "8", "--lens-width", "4", "--lens-blocks", "1", "--log-every", "2",
        "--no-progress"]
COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255)}


def run(*argv):
    return main([str(a) for a in argv])


def write(path, w, h, colour=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.full((h, w, 3), colour, np.uint8) if colour is not None
              else np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))
    Image.fromarray(pixels).save(path)


def mixed_sizes(root, n=24):
    for i in range(n):
        write(root / f"{i:03d}.png", 20 + 7 * i, 90 - 2 * i, seed=i)
    return root


def by_class(root, per_class=20):
    for name, colour in COLOURS.items():
        for i in range(per_class):
            write(root / name / f"{i}.png", 32 + i, 40, colour)
    return root


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEMPERED_GAN_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("arch", ["dcgan", "lsgan", "wgan-gp"])
@pytest.mark.parametrize("side", [64, 128])
def test_the_conv_nets_gain_a_stage_per_doubling(arch, side):
    G, D = make_nets(arch, (3, side, side), 16, 4)
    x = G(torch.randn(2, 16))
    assert x.shape == (2, 3, side, side) and D(x).shape == (2,)
    strided = lambda net: sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in net.modules())  # noqa: E731
    base_g, base_d = make_nets(arch, (3, 32, 32), 16, 4)
    extra = {64: 1, 128: 2}[side]
    assert strided(G) == strided(base_g) + extra and strided(D) == strided(base_d) + extra


def test_a_folder_of_mixed_sizes_trains_at_64_and_exports_64_pixel_samples(tmp_path):
    folder, out = mixed_sizes(tmp_path / "imgs"), tmp_path / "run"
    assert run("train", "--dataset", "folder", "--data-dir", folder, "--resolution", 64, "--steps", 3, "--out", out,
               *TINY) == 0
    assert json.loads((out / "config.json").read_text())["resolution"] == 64
    assert run("sample", out, "--format", "npz", "--n", 10, "--out", tmp_path / "s.npz") == 0
    samples = np.load(tmp_path / "s.npz")["arr_0"]
    assert samples.shape == (10, 64, 64, 3) and samples.dtype == np.uint8
    assert run("sample", out, "--out", tmp_path / "grid.png") == 0
    assert Image.open(tmp_path / "grid.png").size[0] > 3 * 64


def test_a_set_that_exists_only_at_32_refuses_another_size_in_one_line(capsys):
    assert run("train", "--dataset", "mnist", "--resolution", 64, "--dry-run") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mnist exists only at 32×32" in err
    assert run("train", "--dataset", "folder", "--data-dir", ".", "--resolution", 48, "--dry-run") == 2
    assert "--resolution must be 32, 64 or 128" in capsys.readouterr().err
    assert run("train", "--dataset", "mnist", "--skip-unreadable", "--dry-run") == 2
    assert "--skip-unreadable applies to image files" in capsys.readouterr().err


def test_a_folder_laid_out_by_class_has_labels_and_a_test_split(tmp_path):
    folder = by_class(tmp_path / "imgs")
    train, test = load_dataset("folder", str(folder)), load_dataset("folder", str(folder), split="test")
    assert train.classes == ["blue", "red"] and (len(train), len(test)) == (36, 4)
    assert torch.bincount(test.labels).tolist() == [2, 2]          # a tenth of each class
    # Each image's label is its class: blue images have a high blue channel, red a high red one.
    for data in (train, test):
        x = data.batch(torch.arange(len(data)))
        assert torch.equal(data.labels, (x[:, 0, 0, 0] > 0).long())   # red (1) iff the red channel is lit
    flat = mixed_sizes(tmp_path / "flat", n=4)
    assert load_dataset("folder", str(flat)).labels is None
    with pytest.raises(UserError, match="only a folder laid out by class has one"):
        load_dataset("folder", str(flat), split="test")


def test_a_labelled_folder_gets_classifier_fid_and_its_classes_as_modes_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEMPERED_GAN_OFFLINE", "1")
    folder, out = by_class(tmp_path / "imgs"), tmp_path / "run"
    assert run("train", "--dataset", "folder", "--data-dir", folder, "--steps", 2, "--out", out, *TINY) == 0
    capsys.readouterr()
    assert run("eval", out, "--fid-samples", 64) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["features"].startswith("classifier") and scores["modes_total"] == 2
    assert {"precision", "recall", "density", "coverage"} <= set(scores)


def test_without_labels_or_at_64_the_messages_say_what_works(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEMPERED_GAN_OFFLINE", "1")
    flat, labelled = mixed_sizes(tmp_path / "flat", n=8), by_class(tmp_path / "imgs", per_class=8)
    for folder, extra, why in ((flat, [], "one subfolder of images per class"),
                               (labelled, ["--resolution", 64], "32×32 only")):
        out = tmp_path / f"run-{len(extra)}"
        assert run("train", "--dataset", "folder", "--data-dir", folder, "--steps", 1, "--out", out, *extra, *TINY) == 0
        capsys.readouterr()
        assert run("eval", out, "--fid-features", "classifier") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and why in err and "--inception-weights" in err
        assert run("eval", out) == 2                       # auto: Inception, whose weights are not here
        err = capsys.readouterr().err.strip()
        assert why in err and "TEMPERED_GAN_OFFLINE" in err


def test_unreadable_files_are_counted_and_named_or_skipped(tmp_path, capsys):
    folder = by_class(tmp_path / "imgs", per_class=10)
    for i in range(4):
        (folder / "red" / f"bad{i}.png").write_bytes(b"not an image")
    with pytest.raises(UserError) as caught:
        load_dataset("folder", str(folder))
    message = str(caught.value)
    assert "4 of" in message and message.count("bad") == 3 and "1 more" in message and "--skip-unreadable" in message
    data = load_dataset("folder", str(folder), skip_unreadable=True)
    test = load_dataset("folder", str(folder), split="test", skip_unreadable=True)
    assert len(data) + len(test) == 20 and "left out 4 unreadable files of 24" in capsys.readouterr().err
    assert "4 of 24 files" in message
    x = data.batch(torch.arange(len(data)))
    assert torch.equal(data.labels, (x[:, 0, 0, 0] > 0).long())   # labels still match their images
    again = load_dataset("folder", str(folder), skip_unreadable=True)   # from the cache
    assert torch.equal(again.batch(torch.arange(len(again))), x)
    with pytest.raises(UserError, match="4 of"):                 # the cache remembers them
        load_dataset("folder", str(folder))
    out = tmp_path / "run"
    assert run("train", "--dataset", "folder", "--data-dir", folder, "--steps", 1, "--out", out, *TINY) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot read images: 4 of" in err
    assert run("train", "--dataset", "folder", "--data-dir", folder, "--steps", 1, "--out", out,
               "--skip-unreadable", *TINY) == 0


def test_the_cache_is_memory_mapped_and_the_parallel_decode_matches(tmp_path, monkeypatch):
    folder = mixed_sizes(tmp_path / "imgs", n=40)
    here = load_dataset("folder", str(folder), cache_dir=str(tmp_path / "a"), resolution=64)
    (npy,) = (tmp_path / "a").glob("*.npy")
    assert np.load(npy, mmap_mode="r").shape == (40, 3, 64, 64)
    files = image_folder.image_files(folder)
    images, kept = image_folder.load_images("folder", folder, files, None, 64, tmp_path / "a")
    assert isinstance(images, np.memmap) and len(kept) == 40    # read through a memory map, not loaded
    monkeypatch.setattr(image_folder, "PARALLEL_FROM", 1)
    monkeypatch.setattr(image_folder, "CHUNK", 7)
    workers = load_dataset("folder", str(folder), cache_dir=str(tmp_path / "b"), resolution=64)
    assert torch.equal(workers.batch(torch.arange(40)), here.batch(torch.arange(40)))
