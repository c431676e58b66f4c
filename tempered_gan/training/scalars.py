"""The named scalars a training step reports (its losses, and whatever a new term adds), summed on the
device and read only at log steps: no host-device synchronisation per step. The log, TensorBoard and
the run's summary take whatever names the steps reported."""
from __future__ import annotations

import torch
from torch import Tensor


def stacked(values: dict[str, Tensor]) -> Tensor:
    """A step's scalars as one vector, in the order the step reported them (to compare or check steps)."""
    return torch.stack([v.float() for v in values.values()])


class LoggedScalars:
    """Per name, the sum of the values reported since the last log step and how many steps reported it.

    ``names`` are in every record from the first (the trainer's losses, so that a log has the same keys
    whatever the run and however often it was resumed); any other name appears the first time a step
    reports it (in CUDA-graph runs, during the phase's eager warm-up, before capture). A name that no
    step of a window reported is null in that window's record: the lens terms after the lens has
    exited, or without a lens."""

    def __init__(self, device: torch.device, names: tuple[str, ...] = ()):
        self.device = device
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, Tensor] = {}
        for name in names:       # in every record from the first, null until reported
            self._register(name)

    def _register(self, name: str) -> None:
        self.sums[name] = torch.zeros((), device=self.device)
        self.counts[name] = torch.zeros((), device=self.device)

    def add(self, values: dict[str, Tensor]) -> None:
        for name, value in values.items():
            if name not in self.sums:
                self._register(name)
            self.sums[name].add_(value.detach().float())
            self.counts[name].add_(1)

    def take(self, world: int = 1) -> dict[str, float | None]:
        """The mean of each name over the steps that reported it since the last call (with several
        processes, averaged over them: call it on every process), then start again."""
        if not self.sums:
            return {}
        both = torch.stack([torch.stack(list(self.sums.values())), torch.stack(list(self.counts.values()))])
        if world > 1:
            torch.distributed.all_reduce(both)
            both[0] /= world
            both[1] /= world
        sums, counts = both.tolist()
        for tensor in (*self.sums.values(), *self.counts.values()):
            tensor.zero_()
        return {name: (s / n if n > 0 else None) for name, s, n in zip(self.sums, sums, counts)}

    def tensors(self) -> list[tuple[str, Tensor]]:
        """Every device tensor it holds, named (to check where they live)."""
        return [*((f"sum of {k}", v) for k, v in self.sums.items()), *((f"count of {k}", v) for k, v in self.counts.items())]
