"""Data sets for the tempered-GAN experiments.

Every image set is stored as a uint8 tensor ``(N, C, S, S)`` (S = 32, or ``--resolution``
64 or 128 for CelebA and folders, which are memory-mapped from their decoded cache:
:mod:`tempered_gan.data.image_folder`) and converted
to float32 in ``[-1, 1]`` (``v / 127.5 - 1``) only for the rows a batch asks
for; this keeps CIFAR-10 and CelebA small in memory. A missing set is fetched
on first use, checksummed, into its folder (``tempered_gan/util/fetch.py``).

Decisions:

* MNIST / Fashion-MNIST are 28x28; they are zero-padded by 2 pixels on each
  side to 32x32 instead of resized, so strokes are not blurred and the
  background stays exactly black (-1), as is common for DCGAN on MNIST.
* Color MNIST (VEEGAN's "stacked MNIST") puts three independently drawn
  digits into R, G and B. The triplets are drawn once from a
  ``torch.Generator`` seeded with ``COLOR_SEEDS[split]``, independent of any
  run seed, so every run trains on the same data set. Only the grey base set
  and the ``(N, 3)`` index table are stored; ``batch()`` gathers.
* CelebA (``img_align_celeba``, 178x218) is centre-cropped to 108x108 (rows
  55-162, columns 35-142: the usual DCGAN crop around the face) and resized
  to S×S with PIL's antialiased bilinear filter. ``folder`` crops the
  largest centred square instead, and has labels when laid out by class.
  Decoding is slow, so the result is cached in ``cache_dir``
  (:mod:`tempered_gan.data.image_folder`), reused only while the files and settings match.
* The 2-D Gaussian mixtures (VEEGAN / PacGAN benchmarks) draw 100 000 points
  once with a fixed generator (``MIXTURE_SEEDS[split]``).

Environment: ``TEMPERED_GAN_DATA`` sets the root of the default data folders,
``TEMPERED_GAN_CACHE`` the cache folder (default ``~/.cache/tempered-gan``).
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from tempered_gan.data.image_folder import (
    IMAGE_SUFFIXES,
    class_names,
    image_files,
    labels_of,
    load_images,
    split_indices,
)
from tempered_gan.data.registry import DATASET_NAMES, dataset_kind
from tempered_gan.errors import UserError
from tempered_gan.util.fetch import fetch_dataset

IMAGE_SIZE = 32        # the side of every image set but CelebA and folders at another --resolution
CELEBA_CROP = 108
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # Debian dataset-fashion-mnist
COLOR_SEEDS = {"train": 20180301, "test": 20180302}
MIXTURE_SEEDS = {"train": 20180311, "test": 20180312}
MIXTURE_POINTS = 100_000

_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801


class MixtureSpec(NamedTuple):
    """Mode centres ``(x, y)`` of a 2-D Gaussian mixture and the std of every mode."""

    centres: tuple[tuple[float, float], ...]
    std: float


MIXTURE_SPECS = {
    "mixture-ring8": MixtureSpec(
        tuple((2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8))
              for k in range(8)), 0.02),
    "mixture-grid25": MixtureSpec(
        tuple((float(x), float(y)) for x in range(-4, 5, 2) for y in range(-4, 5, 2)), 0.05),
}


class Data:
    """A data set held in memory; ``batch(idx)`` returns float32 samples.

    Attributes: ``name``; ``kind`` ("image" or "points"); ``shape`` of one
    sample, ``(C, 32, 32)`` or ``(2,)``; ``labels``, int64 ``(N,)``, ``(N, 3)``
    for colour-stacked sets (digit in R, G, B), or None.
    """

    def __init__(self, name: str, kind: str, store: torch.Tensor,
                 labels: torch.Tensor | None = None, index: torch.Tensor | None = None):
        self.name = name
        self.kind = kind
        self.labels = labels
        self.classes: list[str] | None = None   # class names of a folder laid out by class
        self._store = store
        # Rows of ``store``: (N,) for a labelled folder's split, (N, 3) of the grey base set for color-stacked sets.
        self._index = index
        sample = store.shape[1:] if index is None or index.dim() == 1 else (index.shape[1], *store.shape[2:])
        self.shape = tuple(sample)

    def __len__(self) -> int:
        return len(self._store if self._index is None else self._index)

    def __repr__(self) -> str:
        return f"Data({self.name!r}, kind={self.kind!r}, n={len(self)}, shape={self.shape})"

    def to(self, device: torch.device) -> "Data":
        """The same data set held on ``device`` (a GPU run gathers its batches
        there, without a copy from the host at every step)."""
        moved = Data(self.name, self.kind, self._store.to(device), self.labels,
                     None if self._index is None else self._index.to(device))
        moved.classes = self.classes
        return moved

    @property
    def device(self) -> torch.device:
        return self._store.device

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Samples at the int64 indices ``idx`` as float32 ``(B, *shape)``, on
        the device that holds the data (``idx`` may live on the host or there).

        Images are scaled from uint8 to [-1, 1]; points are returned as stored.
        """
        if self.kind == "points":
            return self._store[idx]
        if self._index is None:
            pixels = self._store[idx]
        elif self._index.dim() == 1:
            pixels = self._store[self._index[idx]]
        else:
            pixels = self._store[self._index[idx]].reshape(len(idx), *self.shape)
        return pixels.float().div_(127.5).sub_(1.0)


def default_data_dir(name: str) -> str:
    """The folder searched when ``load_dataset`` gets no ``data_dir``.

    ``$TEMPERED_GAN_DATA/<name>`` when that variable is set, else
    ``~/.cache/tempered-gan/data/<name>``; Fashion-MNIST falls back to the
    Debian package's folder instead where it is installed. Colour variants share their base set's
    folder. Mixtures read no files (returns ""); ``folder`` has no default.
    """
    _check_name(name)
    if dataset_kind(name).points:
        return ""
    if name == "folder":
        raise UserError("folder: pass --data-dir pointing at a folder of images")
    name = dataset_kind(name).files
    root = os.environ.get("TEMPERED_GAN_DATA")
    if root:
        return str(Path(root).expanduser() / name)
    if name == "fashion-mnist" and os.path.isdir(FASHION_MNIST_SYSTEM_DIR):
        return FASHION_MNIST_SYSTEM_DIR
    return str(Path.home() / ".cache" / "tempered-gan" / "data" / name)


def default_cache_dir() -> str:
    """``$TEMPERED_GAN_CACHE`` if set, else ``~/.cache/tempered-gan``."""
    env = os.environ.get("TEMPERED_GAN_CACHE")
    return str(Path(env).expanduser() if env else Path.home() / ".cache" / "tempered-gan")


def mixture_centres(name: str) -> torch.Tensor:
    """The ``(M, 2)`` float32 mode centres of a mixture data set."""
    if name not in MIXTURE_SPECS:
        raise UserError(f"unknown mixture {name!r}; choose one of: {', '.join(MIXTURE_SPECS)}")
    return torch.tensor(MIXTURE_SPECS[name].centres, dtype=torch.float32)


def data_of(cfg) -> Data:
    """The train split of a run's data set, as its configuration says (``dataset``,
    ``data_dir``, ``resolution``, ``skip_unreadable``)."""
    return load_dataset(cfg.dataset, cfg.data_dir, resolution=cfg.resolution, skip_unreadable=cfg.skip_unreadable)


def load_dataset(name: str, data_dir: str | None = None, *, split: str = "train",
                 cache_dir: str | None = None, resolution: int = IMAGE_SIZE, skip_unreadable: bool = False) -> Data:
    """Load data set ``name`` (one of ``DATASET_NAMES``) for ``split``.

    ``data_dir`` overrides ``default_data_dir(name)`` and is the only place
    looked in; it is ignored for mixtures. ``cache_dir`` (default
    ``default_cache_dir()``) holds decoded CelebA / folder images, decoded at
    ``resolution`` × ``resolution`` (the other sets exist at 32 only); ``skip_unreadable``
    leaves out their files that cannot be read. A labelled folder has a test split.
    """
    _check_name(name)
    problem = dataset_kind(name).size_problem(resolution)
    if problem:
        raise UserError(f"{name}: cannot load it at {resolution}: {problem}")
    if split not in ("train", "test"):
        raise UserError(f"{name}: unknown split {split!r}; choose 'train' or 'test'")
    if dataset_kind(name).points:
        return _load_mixture(name, split)
    if split == "test" and not dataset_kind(name).test_split and name != "folder":
        raise UserError(f"{name}: has no test split; use split 'train'")
    folder = Path(data_dir).expanduser() if data_dir else Path(default_data_dir(name))
    cache = Path(cache_dir).expanduser() if cache_dir else Path(default_cache_dir())
    if name in ("mnist", "fashion-mnist"):
        images, labels = _load_idx_pair(name, folder, split)
        return Data(name, "image", images, labels)
    if dataset_kind(name).base is not None:
        images, labels = _load_idx_pair(name, folder, split)
        gen = torch.Generator().manual_seed(COLOR_SEEDS[split])
        index = torch.randint(len(images), (len(images), 3), generator=gen)
        return Data(name, "image", images, labels[index], index)
    if name == "cifar10":
        images, labels = _load_cifar10(folder, split)
        return Data(name, "image", images, labels)
    if name == "celeba":
        if (folder / "img_align_celeba").is_dir():
            folder = folder / "img_align_celeba"
        files, crop = image_files(folder, (".jpg",), recursive=False), CELEBA_CROP
        if not files and fetch_dataset("celeba", folder):
            return load_dataset(name, data_dir, split=split, cache_dir=cache_dir, resolution=resolution,
                                skip_unreadable=skip_unreadable)
        if not files:
            raise UserError(f"celeba: no img_align_celeba/*.jpg in {folder}; unpack "
                            "img_align_celeba.zip there (fetched only from TEMPERED_GAN_MIRROR) or pass --data-dir DIR")
        classes = None
    else:  # "folder"; default_data_dir already refused a missing data_dir
        if not folder.is_dir():
            raise UserError(f"folder: {folder} is not a directory; pass --data-dir pointing "
                            "at a folder of images")
        files, crop = image_files(folder), None
        if not files:
            raise UserError(f"folder: no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
        classes = class_names(folder, files)
        if classes is None and split == "test":
            raise UserError(f"folder: has no test split (only a folder laid out by class has one: {folder} "
                            "needs one subfolder of images per class); use split 'train'")
    # The whole folder is decoded into one cache; a labelled folder's split is a table of its rows.
    images, kept = load_images(name, folder, files, crop, resolution, cache, skip_unreadable)
    if classes is None:
        return Data(name, "image", torch.from_numpy(images))
    labels = labels_of(folder, files, classes)
    chosen = np.intersect1d(split_indices(labels, split), kept)        # files of the split that were read
    data = Data(name, "image", torch.from_numpy(images), torch.from_numpy(labels[chosen]),
                torch.from_numpy(np.searchsorted(kept, chosen)))       # their rows in the cache
    data.classes = classes
    return data


def has_labels(name: str, data_dir: str | None) -> bool:
    """Whether data set ``name`` has class labels: the registry says, but a folder has
    them when it is laid out by class (:func:`tempered_gan.data.image_folder.class_names`)."""
    if name != "folder":
        return dataset_kind(name).labels
    folder = Path(data_dir).expanduser() if data_dir else None
    return folder is not None and class_names(folder, image_files(folder)) is not None


def _check_name(name: str) -> None:
    if name not in DATASET_NAMES:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")


# --- MNIST-style IDX files -------------------------------------------------

def _load_idx_pair(name: str, folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images padded to uint8 (N, 1, 32, 32) and int64 labels of an IDX pair."""
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    # Prefer the uncompressed file when both exist: it needs no inflating.
    found = [next((p for p in (folder / s, folder / f"{s}.gz") if p.is_file()), None)
             for s in stems]
    missing = [f"{s}[.gz]" for s, p in zip(stems, found, strict=True) if p is None]
    if missing and fetch_dataset(dataset_kind(name).files, folder):
        return _load_idx_pair(name, folder, split)
    if missing:
        raise UserError(f"{name}: missing {' and '.join(missing)} in {folder}; put the "
                        "IDX files there or pass --data-dir DIR (nothing is downloaded)")
    images = _read_idx(name, found[0], _IDX_IMAGES)
    labels = _read_idx(name, found[1], _IDX_LABELS)
    if images.shape[1:] != (28, 28):
        raise UserError(f"{name}: {found[0]} holds {images.shape[1]}x{images.shape[2]} "
                        "images; MNIST-style IDX images must be 28x28")
    if len(images) != len(labels):
        raise UserError(f"{name}: {found[0]} has {len(images)} images but {found[1]} "
                        f"has {len(labels)} labels")
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # black border: 28x28 -> 32x32
    return torch.from_numpy(padded).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _read_idx(name: str, path: Path, magic: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file, checking magic number and size."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise UserError(f"{name}: {path} is not a valid gzip file ({e})") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big")
    if len(raw) < header or found != magic:
        raise UserError(f"{name}: {path} is not an IDX {'image' if ndim == 3 else 'label'} "
                        f"file (magic 0x{found:08x}, expected 0x{magic:08x})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + math.prod(dims):
        raise UserError(f"{name}: {path} is truncated or corrupt: header says "
                        f"{'x'.join(map(str, dims))} = {math.prod(dims)} bytes, "
                        f"file has {len(raw) - header}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


# --- CIFAR-10 python version -------------------------------------------------

# Everything a CIFAR batch pickle references (numpy 1 and 2 spellings); nothing else.
_CIFAR_PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")})
# What a damaged or foreign pickle raises while loading.
_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError,
                  AttributeError, IndexError, KeyError, ImportError)


class _ArrayUnpickler(pickle.Unpickler):
    """Refuses every global a CIFAR batch does not need, so a data file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def _load_cifar10(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, 32, 32) images and int64 labels from ``cifar-10-batches-py``."""
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing and fetch_dataset("cifar10", folder):
        return _load_cifar10(folder, split)
    if missing:
        raise UserError(f"cifar10: missing {', '.join(missing)} in {folder}; put the CIFAR-10 "
                        "python version (cifar-10-batches-py) there or pass --data-dir DIR "
                        "(nothing is downloaded)")
    images, labels = [], []
    for n in names:
        path = folder / n
        try:
            with path.open("rb") as f:
                batch = _ArrayUnpickler(f, encoding="bytes").load()
        except _PICKLE_ERRORS as e:
            raise UserError(f"cifar10: {path} is not a readable CIFAR-10 batch ({e})") from None
        data = batch.get(b"data") if isinstance(batch, dict) else None
        label = batch.get(b"labels") if isinstance(batch, dict) else None
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == 3 * 32 * 32 and label is not None
                and len(label) == len(data)):
            raise UserError(f"cifar10: {path} is not a CIFAR-10 batch (expected b'data' uint8 "
                            "(N, 3072) and N b'labels')")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32)))  # rows are R, G, B planes
        labels.append(torch.as_tensor(np.asarray(label, dtype=np.int64)))
    return torch.cat(images), torch.cat(labels)


# --- 2-D Gaussian mixtures ---------------------------------------------------

def _load_mixture(name: str, split: str) -> Data:
    centres, std = mixture_centres(name), MIXTURE_SPECS[name].std
    gen = torch.Generator().manual_seed(MIXTURE_SEEDS[split])
    labels = torch.randint(len(centres), (MIXTURE_POINTS,), generator=gen)
    points = centres[labels] + std * torch.randn(MIXTURE_POINTS, 2, generator=gen)
    return Data(name, "points", points, labels)
