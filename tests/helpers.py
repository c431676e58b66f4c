"""What many tests share: the tiny settings that keep a run to seconds on a CPU, and writers of small
data sets in the real file formats (IDX, CIFAR's pickles, image files)."""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import PIL.Image

from tempered_gan.data.loaders import default_data_dir

ROOT = Path(__file__).resolve().parents[1]   # the project's folder

# --- tiny settings --------------------------------------------------------------------------
# The 2-D ring's nets, small: a run of a few steps takes about a second.
TINY_POINTS = dict(dataset="mixture-ring8", batch_size=32, width=16, lens_width=8, lens_blocks=2)
TINY_POINTS_ARGS = ["--batch-size", "32", "--width", "16", "--lens-width", "8", "--lens-blocks", "2"]
# Images (a small MNIST from write_mnist): the smallest conv nets.
TINY_IMAGES = dict(dataset="mnist", batch_size=8, width=4, z_dim=8, lens_width=4, lens_blocks=1)
TINY_IMAGES_ARGS = ["--dataset", "mnist", "--batch-size", "8", "--width", "4", "--z-dim", "8", "--lens-width", "4",
                    "--lens-blocks", "1"]


def args(options: dict) -> list[str]:
    """Options as command-line words: {"batch_size": 8} → ["--batch-size", "8"]."""
    return [w for k, v in options.items() for w in ("--" + k.replace("_", "-"), str(v))]


# --- data -----------------------------------------------------------------------------------

def fashion_mnist_dir() -> Path | None:
    """Where the loader finds Fashion-MNIST by default (Debian's package, or under $TEMPERED_GAN_DATA),
    or None when it is not there: tests that need the real set skip then, with a reason."""
    folder = Path(default_data_dir("fashion-mnist"))
    found = any((folder / f"train-images-idx3-ubyte{ext}").is_file() for ext in ("", ".gz"))
    return folder if found else None


NO_FASHION = "Fashion-MNIST is not at its default place (Debian package dataset-fashion-mnist, or $TEMPERED_GAN_DATA)"


# --- fixture writers ---------------------------------------------------------

def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> None:
    """An unsigned-byte IDX file (gzipped when the name ends in .gz)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw += array.tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def mnist_images(n: int, offset: int = 0) -> np.ndarray:
    """28x28 images: pixel (0,0) = index (identifies the image), (27,27) = 255, (5,7) = 128."""
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0] = np.arange(offset, offset + n)
    images[:, 27, 27] = 255
    images[:, 5, 7] = 128
    return images


def write_mnist(folder: Path, n: int = 12, n_test: int = 5, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, count, offset in (("train", n, 0), ("t10k", n_test, 100)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", mnist_images(count, offset))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", np.arange(count) % 10)
    return folder


def cifar_batch(n: int, first_label: int) -> dict:
    """A batch dict as in the CIFAR python version: R, G, B planes of 1024 bytes per row."""
    data = np.zeros((n, 3072), np.uint8)
    data[:, :1024], data[:, 1024:2048], data[:, 2048:] = 10, 20, 30
    data[:, 1] = 255                      # R plane, row 0, column 1
    data[:, 1024 + 32] = np.arange(n)     # G plane, row 1, column 0
    return {b"batch_label": b"fixture", b"labels": [first_label + i for i in range(n)],
            b"data": data, b"filenames": [b"x.png"] * n}


def write_pickle(path: Path, obj) -> None:
    # Protocol 2 with numpy 1 names, like the real (Python 2 era) CIFAR files.
    raw = pickle.dumps(obj, protocol=2).replace(b"numpy._core.", b"numpy.core.")
    path.write_bytes(raw)


def write_cifar(root: Path, n: int = 2) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        write_pickle(folder / f"data_batch_{i}", cifar_batch(n, first_label=i))
    write_pickle(folder / "test_batch", cifar_batch(n, first_label=7))
    return folder


def write_image(path: Path, array: np.ndarray, **save_args) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(np.asarray(array, np.uint8)).save(path, **save_args)


def solid(h: int, w: int, rgb) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()
