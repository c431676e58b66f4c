"""A run's checkpoint: written atomically (a crash or a full disk never leaves a half-written
checkpoint in place of the last good one) and read with ``weights_only`` (nothing in it can run code)."""
from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import torch

from tempered_gan.errors import UserError
from tempered_gan.util.atomic_files import atomic_write_bytes
from tempered_gan.util.renamed import CHECKPOINT_KEYS, renamed

CHECKPOINT = "checkpoint.pt"
FORMAT_VERSION = 2   # 2: per-process random states and replica fingerprints


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
    return renamed(state, CHECKPOINT_KEYS, f"{path}")
