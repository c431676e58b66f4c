"""Atomic files: a crash or a full disk never leaves a half-written file (a checkpoint, a report, a
cache) in place of the last good one; caches that fail to write or read cost only the cache."""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from tempered_gan.errors import writing


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync it, then rename over
    ``path``: readers see either the old file or the new one, never a mix.
    A failed write (a full disk) raises one :class:`WriteError` naming ``path``
    and leaves the old file as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with writing(path):
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)   # make the rename itself durable
        finally:
            os.close(dir_fd)



def write_cache(path: Path, obj: dict, what: str) -> None:
    """``torch.save(obj)`` to a cache file, atomically. A failure (a full disk) only costs
    the cache: one warning naming ``what`` and the file, and the old file stays. Saved in
    memory first: torch's file writer reports a failed write as a RuntimeError."""
    import warnings

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        warnings.warn(f"could not write {what} {path}: {exc}", stacklevel=4)

def read_cache(path: Path) -> dict:
    """A cache file's contents, or {} when it is missing, damaged or foreign (the caller then rebuilds it)."""
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True) if Path(path).is_file() else {}
    except Exception:  # torch raises many types for a truncated or foreign file
        return {}
    return cached if isinstance(cached, dict) else {}
