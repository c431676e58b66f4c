"""Atomic files: a crash or a full disk never leaves a half-written checkpoint
in place of the last good one."""
from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path

import torch

from .errors import UserError, writing

CHECKPOINT = "checkpoint.pt"
FORMAT_VERSION = 2   # 2: per-process random states and replica fingerprints


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

def save_checkpoint(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT_VERSION, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    """The state saved by :func:`save_checkpoint`.

    Read with ``weights_only=True``: a checkpoint holds only tensors, numbers,
    strings, booleans, None, lists, tuples and dicts (configuration, state
    dicts, random states, sampler position, fingerprints). Anything else in the
    pickle, e.g. an object whose unpickling calls ``os.system``, is refused
    with one :class:`UserError` before it can run.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no {path.name} in {path.parent}: nothing to resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise UserError(f"{path} holds a pickled {found.group(1)}, not only tensors, numbers, strings, lists and "
                            "dicts; refusing to load it (unpickling it could run arbitrary code)") from None
        raise UserError(f"{path} is corrupt or not a checkpoint (UnpicklingError)") from None
    except Exception as exc:  # torch raises many types for a corrupt file
        raise UserError(f"{path} is corrupt or truncated ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise UserError(f"{path} is not a tempered-gan checkpoint of format {FORMAT_VERSION}")
    return state


def read_cache(path: Path) -> dict:
    """A cache file's contents, or {} when it is missing, damaged or foreign (the caller then rebuilds it)."""
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True) if Path(path).is_file() else {}
    except Exception:  # torch raises many types for a truncated or foreign file
        return {}
    return cached if isinstance(cached, dict) else {}
