"""Tests for tempered_gan.data on small fixtures written in the real file formats."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from helpers import (
    NO_FASHION,
    fashion_mnist_dir,
    mnist_images,
    solid,
    write_cifar,
    write_idx,
    write_image,
    write_mnist,
    write_pickle,
)

from tempered_gan.data import loaders as D
from tempered_gan.data.loaders import default_data_dir, load_dataset
from tempered_gan.errors import UserError


def scaled(v) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float32) / 127.5 - 1


# --- MNIST-style IDX ---------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_mnist_pixels_padding_and_labels(tmp_path, gz):
    d = load_dataset("mnist", str(write_mnist(tmp_path, gz=gz)))
    assert (d.name, d.kind, d.shape, len(d)) == ("mnist", "image", (1, 32, 32), 12)
    assert torch.equal(d.labels, torch.arange(12) % 10) and d.labels.dtype == torch.int64
    x = d.batch(torch.arange(12))
    assert x.dtype == torch.float32 and x.shape == (12, 1, 32, 32)
    # Pixel (r, c) lands at (r + 2, c + 2); 0 -> -1 and 255 -> 1 exactly.
    assert torch.equal(x[:, 0, 2, 2], scaled(np.arange(12)))
    assert x[0, 0, 2, 2] == -1 and torch.all(x[:, 0, 29, 29] == 1)
    assert torch.all(x[:, 0, 7, 9] == scaled(128))
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert torch.all(x[:, 0][:, border] == -1)
    assert torch.equal(d.batch(torch.tensor([3, 1]))[:, 0, 2, 2], scaled([3, 1]))


def test_test_split_and_fashion_name(tmp_path):
    d = load_dataset("fashion-mnist", str(write_mnist(tmp_path)), split="test")
    assert len(d) == 5 and d.name == "fashion-mnist"
    assert torch.equal(d.batch(torch.arange(5))[:, 0, 2, 2], scaled(np.arange(100, 105)))


def test_raw_file_preferred_and_gz_accepted_per_file(tmp_path):
    write_mnist(tmp_path, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(12, 9))
    assert torch.all(load_dataset("mnist", str(tmp_path)).labels == 9)


@pytest.mark.parametrize("name, base", [("color-mnist", "mnist"),
                                        ("color-fashion-mnist", "fashion-mnist")])
def test_color_stacking(tmp_path, name, base):
    folder = str(write_mnist(tmp_path, n=50))
    grey, color = load_dataset(base, folder), load_dataset(name, folder)
    assert (len(color), color.shape, color.labels.shape) == (50, (3, 32, 32), (50, 3))
    x = color.batch(torch.arange(50))
    # Pixel (2, 2) of each channel identifies which base image was stacked there.
    index = ((x[:, :, 2, 2] + 1) * 127.5).round().long()
    assert torch.equal(color.labels, grey.labels[index])
    assert torch.equal(x, grey.batch(index.flatten()).reshape(50, 3, 32, 32))
    assert len(torch.unique(index)) > 25 and not torch.equal(index[:, 0], index[:, 1])
    again = load_dataset(name, folder)
    assert torch.equal(again.labels, color.labels)
    assert torch.equal(again.batch(torch.arange(50)), x)


def test_color_test_split_uses_test_base(tmp_path):
    d = load_dataset("color-mnist", str(write_mnist(tmp_path)), split="test")
    index = ((d.batch(torch.arange(5))[:, :, 2, 2] + 1) * 127.5).round().long()
    assert len(d) == 5 and torch.all((index >= 100) & (index < 105))
    assert torch.equal(d.labels, (index - 100) % 10)


def test_idx_errors(tmp_path):
    with pytest.raises(UserError, match=r"mnist: missing train-images-idx3-ubyte\[\.gz\] and "
                       r"train-labels-idx1-ubyte\[\.gz\] in .*--data-dir"):
        load_dataset("mnist", str(tmp_path))
    folder = write_mnist(tmp_path / "m")
    images = folder / "train-images-idx3-ubyte"
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match=r"fashion-mnist: missing t10k-labels-idx1-ubyte\[\.gz\]"):
        load_dataset("fashion-mnist", str(folder), split="test")

    raw = images.read_bytes()
    images.write_bytes(raw[:-10])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_dataset("mnist", str(folder))
    images.write_bytes((folder / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(UserError, match="not an IDX image file.*magic 0x00000801"):
        load_dataset("mnist", str(folder))
    write_idx(images, mnist_images(7))
    with pytest.raises(UserError, match="7 images but .* 12 labels"):
        load_dataset("mnist", str(folder))
    write_idx(images, np.zeros((12, 32, 32)))
    with pytest.raises(UserError, match="32x32 images; .* must be 28x28"):
        load_dataset("mnist", str(folder))

    images.unlink()
    gz = images.with_name(images.name + ".gz")
    write_idx(gz, mnist_images(12))
    gz.write_bytes(gz.read_bytes()[:-20])
    with pytest.raises(UserError, match="not a valid gzip file"):
        load_dataset("mnist", str(folder))


# --- CIFAR-10 ------------------------------------------------------------------

def test_cifar10_layout_and_both_folder_forms(tmp_path):
    folder = write_cifar(tmp_path)
    d = load_dataset("cifar10", str(tmp_path))
    assert (d.kind, d.shape, len(d)) == ("image", (3, 32, 32), 10)
    assert torch.equal(d.labels, torch.tensor([1, 2, 2, 3, 3, 4, 4, 5, 5, 6]))
    x = d.batch(torch.arange(10))
    assert torch.all(x[:, 0, 0, 0] == scaled(10)) and torch.all(x[:, 0, 0, 1] == 1)
    assert torch.all(x[:, 1, 0, 0] == scaled(20)) and torch.all(x[:, 2, 5, 5] == scaled(30))
    assert torch.equal(x[:, 1, 1, 0], scaled([0, 1] * 5))
    assert torch.equal(load_dataset("cifar10", str(folder)).batch(torch.arange(10)), x)
    test = load_dataset("cifar10", str(folder), split="test")
    assert len(test) == 2 and torch.equal(test.labels, torch.tensor([7, 8]))


def test_cifar10_errors(tmp_path):
    with pytest.raises(UserError, match="cifar10: missing data_batch_1, .*data_batch_5 in .*"
                       "cifar-10-batches-py"):
        load_dataset("cifar10", str(tmp_path))
    folder = write_cifar(tmp_path)
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(UserError, match="data_batch_3 is not a readable CIFAR-10 batch"):
        load_dataset("cifar10", str(folder))
    write_pickle(batch, {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]})
    with pytest.raises(UserError, match=r"data_batch_3 is not a CIFAR-10 batch.*\(N, 3072\)"):
        load_dataset("cifar10", str(folder))
    batch.write_bytes(pickle.dumps(os.getcwd))  # arbitrary callables are refused, not called
    with pytest.raises(UserError, match="unexpected object"):
        load_dataset("cifar10", str(folder))


# --- CelebA and image folders ---------------------------------------------------

def celeba_face() -> np.ndarray:
    """178x218 red image; the 108x108 centre crop is green with a blue top-left quarter."""
    img = solid(218, 178, (255, 0, 0))
    img[55:163, 35:143] = (0, 255, 0)
    img[55:82, 35:62] = (0, 0, 255)
    return img


def test_celeba_centre_crop(tmp_path):
    faces = tmp_path / "celeba" / "img_align_celeba"
    for i in range(5):
        write_image(faces / f"{i + 1:06d}.jpg", celeba_face(), quality=95, subsampling=0)
    d = load_dataset("celeba", str(tmp_path / "celeba"), cache_dir=str(tmp_path / "cache"))
    assert (d.kind, d.shape, len(d), d.labels) == ("image", (3, 32, 32), 5, None)
    x = (d.batch(torch.arange(5)) + 1) * 127.5
    assert torch.all(x[:, 2, :6, :6] > 200) and torch.all(x[:, :2, :6, :6] < 50)  # blue corner
    green = x[:, :, 10:, 10:]
    assert torch.all(green[:, 1] > 200) and torch.all(green[:, 0] < 50)
    # No red from outside the crop on any edge.
    edges = torch.cat([x[:, 0, 0], x[:, 0, -1], x[:, 0, :, 0], x[:, 0, :, -1]], dim=1)
    assert torch.all(edges < 50)
    same = load_dataset("celeba", str(faces), cache_dir=str(tmp_path / "cache"))
    assert torch.equal(same.batch(torch.arange(5)), d.batch(torch.arange(5)))


def test_folder_crop_modes_and_order(tmp_path):
    stripes = solid(20, 40, (255, 0, 0))
    stripes[:, 10:30] = (0, 255, 0)
    stripes[:, 30:] = (0, 0, 255)
    write_image(tmp_path / "imgs" / "a" / "stripes.png", stripes)
    grey = np.zeros((40, 20), np.uint8)
    grey[10:30] = 255
    write_image(tmp_path / "imgs" / "b" / "grey.PNG", grey)
    write_image(tmp_path / "imgs" / "c.JPG", solid(32, 32, (0, 0, 0)))
    write_image(tmp_path / "imgs" / "d.bmp", solid(8, 8, (255, 255, 255)))
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 2:] = 255
    write_image(tmp_path / "imgs" / "e.webp", rgba, lossless=True)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    d = load_dataset("folder", str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache"))
    assert (d.shape, len(d), d.labels) == ((3, 32, 32), 5, None)
    x = d.batch(torch.arange(5))
    expected = torch.tensor([[-1, 1, -1], [1, 1, 1], [-1, -1, -1], [1, 1, 1], [-1, -1, 1]])
    assert torch.equal(x, expected.float()[:, :, None, None].expand(5, 3, 32, 32))


def make_folder(root: Path) -> Path:
    write_image(root / "one.png", solid(16, 16, (255, 0, 0)))
    write_image(root / "sub" / "two.png", solid(16, 16, (0, 0, 255)))
    return root


def test_folder_cache_reused_and_rebuilt(tmp_path, monkeypatch):
    folder, cache = make_folder(tmp_path / "imgs"), tmp_path / "cache"
    first = load_dataset("folder", str(folder), cache_dir=str(cache)).batch(torch.arange(2))
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]  # no temp file left behind

    real_open = PIL.Image.open

    def no_decoding(*args, **kwargs):
        raise AssertionError("image decoded although the cache matches")

    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    again = load_dataset("folder", str(folder), cache_dir=str(cache)).batch(torch.arange(2))
    assert torch.equal(again, first)

    changed = folder / "sub" / "two.png"
    write_image(changed, solid(16, 16, (0, 255, 0)))
    os.utime(changed, ns=(1_000_000_000, 1_000_000_000))
    with pytest.raises(AssertionError, match="decoded"):
        load_dataset("folder", str(folder), cache_dir=str(cache))
    monkeypatch.setattr(PIL.Image, "open", real_open)
    rebuilt = load_dataset("folder", str(folder), cache_dir=str(cache)).batch(torch.arange(2))
    assert torch.equal(rebuilt[0], first[0]) and torch.all(rebuilt[1, 1] == 1)
    assert len(list(cache.iterdir())) == 2  # the stale cache was replaced, not kept

    for suffix in (".npy", ".json"):
        (cache_file,) = cache.glob(f"*{suffix}")
        cache_file.write_bytes(b"damaged")
        repaired = load_dataset("folder", str(folder), cache_dir=str(cache)).batch(torch.arange(2))
        assert torch.equal(repaired, rebuilt)


def test_default_cache_dir_from_env_and_unwritable_cache(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "imgs")
    monkeypatch.setenv("TEMPERED_GAN_CACHE", str(tmp_path / "envcache"))
    load_dataset("folder", str(folder))
    assert len(list((tmp_path / "envcache").glob("folder-*.npy"))) == 1
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="could not write image cache"):
        d = load_dataset("folder", str(folder), cache_dir=str(blocker / "cache"))
    assert len(d) == 2


def test_image_folder_errors(tmp_path):
    message = "^folder: pass --data-dir pointing at a folder of images$"
    with pytest.raises(UserError, match=message):
        load_dataset("folder")
    with pytest.raises(UserError, match="is not a directory"):
        load_dataset("folder", str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="folder: no images .* under"):
        load_dataset("folder", str(tmp_path / "empty"))
    folder = make_folder(tmp_path / "imgs")
    (folder / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"folder: cannot read image: 1 of 3 files: .*bad\.png"):
        load_dataset("folder", str(folder), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(UserError, match="folder: has no test split"):
        load_dataset("folder", str(folder), split="test")
    with pytest.raises(UserError, match="celeba: no img_align_celeba/\\*.jpg in .*--data-dir"):
        load_dataset("celeba", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="celeba: has no test split"):
        load_dataset("celeba", str(tmp_path), split="test")


# --- mixtures ----------------------------------------------------------------------

@pytest.mark.parametrize("name, n_modes, std", [("mixture-ring8", 8, 0.02),
                                                ("mixture-grid25", 25, 0.05)])
def test_mixtures(name, n_modes, std):
    d = load_dataset(name, "/does/not/matter")
    centres = D.mixture_centres(name)
    assert (d.kind, d.shape, len(d), centres.shape) == ("points", (2,), 100_000, (n_modes, 2))
    assert D.MIXTURE_SPECS[name].std == std
    x = d.batch(torch.arange(len(d)))
    assert x.dtype == torch.float32
    assert torch.equal(torch.cdist(x, centres).argmin(dim=1), d.labels)
    offsets = x - centres[d.labels]
    for mode in range(n_modes):
        assert offsets[d.labels == mode].mean(dim=0).abs().max() < 0.1 * std
    assert torch.allclose(offsets.std(dim=0), torch.full((2,), std), rtol=0.03)
    counts = torch.bincount(d.labels, minlength=n_modes).float()
    assert counts.min() > 0.9 * len(d) / n_modes
    assert torch.equal(load_dataset(name).batch(torch.arange(len(d))), x)
    assert not torch.equal(load_dataset(name, split="test").batch(torch.arange(10)), x[:10])


def test_mixture_centres_geometry():
    ring = D.mixture_centres("mixture-ring8")
    assert torch.allclose(ring.norm(dim=1), torch.full((8,), 2.0))
    assert torch.allclose(ring[1], torch.tensor([math.sqrt(2), math.sqrt(2)]))
    grid = D.mixture_centres("mixture-grid25")
    assert sorted(set(grid[:, 0].tolist())) == [-4, -2, 0, 2, 4]
    assert len(set(map(tuple, grid.tolist()))) == 25


# --- names, splits and default locations --------------------------------------------

def test_unknown_names_and_splits():
    message = "unknown dataset 'foo'; choose one of: mnist, fashion-mnist, color-mnist"
    with pytest.raises(UserError, match=message):
        load_dataset("foo")
    with pytest.raises(UserError, match="unknown dataset 'foo'"):
        default_data_dir("foo")
    with pytest.raises(UserError, match="unknown split 'val'"):
        load_dataset("mixture-ring8", split="val")


def test_default_data_dirs(monkeypatch):
    monkeypatch.delenv("TEMPERED_GAN_DATA", raising=False)
    home = Path.home() / ".cache" / "tempered-gan" / "data"
    assert default_data_dir("mnist") == str(home / "mnist")
    assert default_data_dir("color-mnist") == str(home / "mnist")
    assert default_data_dir("cifar10") == str(home / "cifar10")
    debian = Path("/usr/share/datasets/fashion-mnist")          # where Debian's package is installed, else fetched
    fashion = str(debian if debian.is_dir() else home / "fashion-mnist")
    assert default_data_dir("fashion-mnist") == fashion and default_data_dir("color-fashion-mnist") == fashion
    assert default_data_dir("mixture-grid25") == ""
    monkeypatch.setenv("TEMPERED_GAN_DATA", "/data")
    assert default_data_dir("celeba") == "/data/celeba"
    assert default_data_dir("fashion-mnist") == "/data/fashion-mnist"
    with pytest.raises(UserError, match="folder: pass --data-dir"):
        default_data_dir("folder")
    with pytest.raises(UserError, match="mnist: missing train-images-idx3-ubyte.* in /data/mnist"):
        load_dataset("mnist")


def test_every_name_is_handled(tmp_path):
    write_mnist(tmp_path)
    write_cifar(tmp_path)
    make_folder(tmp_path / "img_align_celeba")  # the .png files are ignored: CelebA is .jpg
    write_image(tmp_path / "img_align_celeba" / "000001.jpg", celeba_face())
    for name in D.DATASET_NAMES:
        d = load_dataset(name, str(tmp_path), cache_dir=str(tmp_path / "cache"))
        assert d.name == name and d.batch(torch.tensor([0])).shape == (1, *d.shape)


@pytest.mark.skipif(fashion_mnist_dir() is None, reason=NO_FASHION)
def test_real_fashion_mnist():
    d = load_dataset("fashion-mnist")
    assert (len(d), d.shape) == (60000, (1, 32, 32))
    assert torch.equal(torch.unique(d.labels), torch.arange(10))
    x = d.batch(torch.arange(0, 60000, 7))
    assert x.min() == -1 and x.max() == 1
    assert torch.all(x[:, :, :2] == -1) and torch.all(x[:, :, :, 30:] == -1)
