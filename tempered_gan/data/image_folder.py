"""Folders of image files (``--dataset folder``, CelebA): which files, their classes, and a
decoded cache that need not fit in memory.

* **Files**: every ``.png``, ``.jpg``, ``.jpeg``, ``.bmp`` or ``.webp`` below the folder, sorted.
* **Classes**: a folder laid out as torchvision's ``ImageFolder`` (no image at its top,
  and at least two subfolders holding images) has labels: the sorted subfolder names
  (:func:`class_names`). Then it has classes as modes and a test split: a seeded tenth
  of each class (:func:`split_indices`), as MNIST's test set is kept from its train set.
* **Decoding**: each image is centre-cropped to a square (CelebA: to 108 px, as is usual)
  and resized to ``side`` × ``side`` with a bilinear filter, once, in parallel worker
  processes with a progress bar, into one uint8 ``(N, 3, side, side)`` ``.npy`` file under
  the cache folder. Batches read it through a memory map, so 200 000 images at 128²
  (about 10 GB) train without that much memory. A ``.json`` beside it records which
  files (paths, sizes, modification times) and settings it holds; a changed folder
  is decoded again.
* **Unreadable files**: one stops the run, and the message counts them all and names the
  first few; ``--skip-unreadable`` leaves them out and says how many.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from tempered_gan.errors import UserError
from tempered_gan.util.atomic_files import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CACHE_VERSION = 2            # 1: one torch file held in memory; 2: a memory-mapped .npy
TEST_SHARE = 0.1             # of each class of a labelled folder, kept as its test split
SPLIT_SEED = 20180321
NAMED = 3                    # unreadable files named in the message
PARALLEL_FROM = 256          # images: fewer are decoded in this process (workers cost a start-up each)
CHUNK = 64                   # images per task of a worker


def image_files(folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES, recursive: bool = True) -> list[Path]:
    """Sorted image files in ``folder`` (suffix matched case-insensitively)."""
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in suffixes and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def class_names(folder: Path, files: list[Path]) -> list[str] | None:
    """The classes of an ``ImageFolder`` layout (sorted subfolder names), or None: the folder
    has images at its top, or fewer than two subfolders with images."""
    tops = {p.relative_to(folder).parts[0] if len(p.relative_to(folder).parts) > 1 else None for p in files}
    if None in tops or len(tops) < 2:
        return None
    return sorted(tops)


def labels_of(folder: Path, files: list[Path], classes: list[str]) -> np.ndarray:
    """Each file's class index (int64)."""
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[p.relative_to(folder).parts[0]] for p in files], dtype=np.int64)


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """The rows of ``split`` in a labelled folder: a seeded tenth of each class (at least one
    image of a class with two or more) is ``test``, the rest ``train``."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        n = int(round(TEST_SHARE * len(rows))) or (1 if len(rows) > 1 else 0)
        test.extend(rng.permutation(rows)[:n])
    test = np.sort(np.array(test, dtype=np.int64))
    return test if split == "test" else np.setdiff1d(np.arange(len(labels)), test)


# --- decoding -----------------------------------------------------------------------------

def decode_image(path: Path, crop: int | None, side: int) -> np.ndarray:
    """One image as uint8 (side, side, 3): centre crop (``crop`` or the largest square), resize.
    Raises OSError or ValueError for a file that is not a readable image."""
    with Image.open(path) as img:
        img = img.convert("RGB")
    w, h = img.size
    square = min(w, h) if crop is None else min(crop, w, h)
    left, top = (w - square) // 2, (h - square) // 2
    # Crop first so pixels outside the box cannot leak in through the filter support.
    img = img.crop((left, top, left + square, top + square))
    return np.array(img.resize((side, side), Image.Resampling.BILINEAR))


def _decode_into(out: np.ndarray, start: int, files: list[Path], crop: int | None, side: int) -> list[tuple[int, str]]:
    """Decode ``files`` into rows start, start + 1, … of ``out``; returns (row, reason) of each unreadable file."""
    failed = []
    for i, path in enumerate(files, start):
        try:
            out[i] = decode_image(path, crop, side).transpose(2, 0, 1)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            failed.append((i, reason.replace(f" {str(path)!r}", "").replace(str(path), "the file")))   # named once
    return failed


def _decode_chunk(path: str, start: int, files: list[str], crop: int | None, side: int) -> list[tuple[int, str]]:
    """A worker's task: decode into rows of the .npy file at ``path``."""
    out = np.load(path, mmap_mode="r+")
    failed = _decode_into(out, start, [Path(f) for f in files], crop, side)
    out.flush()
    return failed


def _decode_all(out: np.ndarray, path: Path | None, files: list[Path], crop: int | None, side: int,
                name: str) -> list[tuple[int, str]]:
    """Every file into ``out`` (backed by ``path``, or in memory), with a progress bar on a terminal."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(files), desc=f"{name}: decoding {len(files)} images at {side}×{side}", unit="img",
               disable=None, file=sys.stderr)
    workers = min(8, os.cpu_count() or 1)
    try:
        if path is None or len(files) < PARALLEL_FROM or workers == 1:
            failed = []
            for start in range(0, len(files), CHUNK):
                failed += _decode_into(out, start, files[start:start + CHUNK], crop, side)
                bar.update(len(files[start:start + CHUNK]))
            return failed
        out.flush()
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            tasks = {pool.submit(_decode_chunk, str(path), start, [str(f) for f in files[start:start + CHUNK]],
                                 crop, side): len(files[start:start + CHUNK]) for start in range(0, len(files), CHUNK)}
            failed = []
            for task, n in tasks.items():
                failed += task.result()
                bar.update(n)
        return sorted(failed)
    finally:
        bar.close()


def unreadable_message(name: str, files: list[Path], failed: list[tuple[int, str]]) -> str:
    named = "; ".join(f"{files[i]} ({reason})" for i, reason in failed[:NAMED])
    more = f"; and {len(failed) - NAMED} more" if len(failed) > NAMED else ""
    return (f"{name}: cannot read image{'s' if len(failed) > 1 else ''}: {len(failed)} of {len(files)} files: "
            f"{named}{more}; fix or remove them, or pass --skip-unreadable to leave them out")


# --- the cache ------------------------------------------------------------------------------

def _key(root: Path, files: list[Path], settings: str) -> str:
    key = hashlib.sha256(settings.encode())
    for p in files:
        st = p.stat()
        key.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return key.hexdigest()


def load_images(name: str, root: Path, files: list[Path], crop: int | None, side: int, cache_dir: Path,
                skip_unreadable: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``files`` decoded to uint8 ``(N, 3, side, side)``, memory-mapped from the cache (held in
    memory only when the cache folder cannot be written, with a warning), and the rows of
    ``files`` they hold (all, or the readable ones with ``skip_unreadable``)."""
    settings = f"v{CACHE_VERSION} rgb crop={crop or 'square'} size={side} resample=bilinear"
    key = _key(root, files, settings)
    # One cache per folder and settings, so a changed folder overwrites its stale cache.
    slot = hashlib.sha256(f"{root.resolve()}\0{settings}".encode()).hexdigest()[:16]
    path, meta_path = cache_dir / f"{name}-{slot}.npy", cache_dir / f"{name}-{slot}.json"
    cached = _read_cache(path, meta_path, key, side)
    if cached is not None:
        images, kept, skipped = cached
        if skipped and not skip_unreadable:
            raise UserError(unreadable_message(name, files, skipped))
        _say_skipped(name, files, skipped)
        return images, kept

    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    shape = (len(files), 3, side, side)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _reserve(tmp)
    except OSError as exc:
        warnings.warn(f"could not write image cache {path}: {exc}; holding the images in memory", stacklevel=3)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        out, tmp = np.empty(shape, np.uint8), None
    try:
        failed = _decode_all(out, tmp, files, crop, side, name)
        if failed and not skip_unreadable:
            raise UserError(unreadable_message(name, files, failed))
        kept = np.setdiff1d(np.arange(len(files)), [i for i, _ in failed])
        if failed:
            out = _compact(out, tmp, kept)
        if tmp is not None:
            del out
            os.replace(tmp, path)
            atomic_write_bytes(meta_path, json.dumps({"key": key, "kept": len(kept), "side": side,
                                                      "skipped": failed}).encode())
            tmp = None
            out = np.load(path, mmap_mode="c")
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    _say_skipped(name, files, failed)
    return out, kept


def _reserve(path: Path) -> None:
    """Allocate the whole file now: a full disk is then one error here, not a crash when a page is written."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(f.fileno(), 0, size)


def _compact(out: np.ndarray, tmp: Path | None, kept: np.ndarray) -> np.ndarray:
    """Only the rows ``kept``, in order (in place in the file, then truncated)."""
    for new, old in enumerate(kept):
        if new != old:
            out[new] = out[old]
    if tmp is None:
        return out[:len(kept)].copy()
    out.flush()
    shape = (len(kept), *out.shape[1:])
    header = np.lib.format.open_memmap(tmp, mode="r").offset
    del out
    # Rewrite the header for the smaller shape (padded to the same length) and cut the file there.
    with open(tmp, "r+b") as f:
        f.seek(0)
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
        if f.tell() != header:
            raise OSError("the cache's header changed length")
        f.truncate(header + int(np.prod(shape)))
    return np.load(tmp, mmap_mode="r+")


def _read_cache(path: Path, meta_path: Path, key: str, side: int):
    """(images, kept rows, skipped files) of a cache that matches ``key``, else None."""
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            return None
        images = np.load(path, mmap_mode="c")
    except (OSError, ValueError):
        return None
    skipped = [tuple(s) for s in meta.get("skipped", [])]
    if images.dtype != np.uint8 or images.shape[1:] != (3, side, side) or len(images) != meta.get("kept"):
        return None
    rows = np.setdiff1d(np.arange(len(images) + len(skipped)), [i for i, _ in skipped])
    return images, rows, skipped


_SAID: set[str] = set()   # the files this process has already said it left out


def _say_skipped(name: str, files: list[Path], skipped: list) -> None:
    """One line, once per process and file, naming what --skip-unreadable left out."""
    first = str(files[skipped[0][0]]) if skipped else None
    if skipped and first not in _SAID:
        _SAID.add(first)
        print(f"{name}: left out {len(skipped)} unreadable file{'s' if len(skipped) > 1 else ''} of {len(files)} "
              f"(--skip-unreadable), e.g. {files[skipped[0][0]]}", file=sys.stderr)
