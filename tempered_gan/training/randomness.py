"""A run's random streams and data order.

G, D and the lens are initialised from generators of their own, and noise, data order, penalty
interpolates and instance noise each have their own stream, all derived from the seed. Adding a
tempering therefore changes nothing else: same initial G and D, same batches, same noise.
"""
from __future__ import annotations

import hashlib

import torch

from tempered_gan.config.train_config import TrainConfig
from tempered_gan.util.distributed import SINGLE_PROCESS, Dist


def seed_for(seed: int, stream: str) -> int:
    """A seed for one named random stream, stable across processes and versions."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:7], "little")


def random_stream(cfg: TrainConfig, name: str, device: torch.device, dist: Dist = SINGLE_PROCESS) -> torch.Generator:
    """The generator of stream ``name`` on ``device``, one per process (rank 0 uses
    the single-process stream, so one process is the world = 1 case)."""
    suffix = f"/rank{dist.rank}" if dist.rank else ""
    return torch.Generator(device).manual_seed(seed_for(cfg.seed, name + suffix))


class EpochSampler:
    """Batches of indices from a fresh permutation every epoch (last partial
    batch dropped). Its position is two integers, so resuming is exact.

    With several processes, each takes its own slice of ``batch_size`` indices
    from the same permutation: the processes together see ``world × batch_size``
    distinct samples per step."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.position = 0, 0
        self._perm, self._perm_epoch = None, -1

    def next(self) -> torch.Tensor:
        stride = self.batch_size * self.world
        if self.position + stride > self.n:
            self.epoch, self.position = self.epoch + 1, 0
        if self._perm_epoch != self.epoch:
            g = torch.Generator().manual_seed(seed_for(self.seed, f"data-epoch-{self.epoch}"))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), self.epoch
        start = self.position + self.rank * self.batch_size
        self.position += stride
        return self._perm[start:start + self.batch_size]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
