"""How a :class:`~tempered_gan.training.trainer.Trainer` runs its iterations: op by op
(``EagerRunner``, the default), or replayed as captured CUDA graphs
(``CudaGraphRunner``, ``--cuda-graphs`` on one GPU).

Status: **experimental, not yet run on a GPU.** It was written on a machine
without one; its GPU tests (tests/training/test_cuda_graphs.py) skip on the CPU, where
the same file checks what needs no GPU (the tests' set-up, the device packet,
resuming across the option, eval and sample of such a run); the benchmark
(benchmarks/bench_gpu.py) and benchmarks/gpu_session.sh need a GPU. It stays
opt-in until those have measured it on a GPU.

An eager GPU step of the paper's nets is bound by the host: about 670 kernel
launches per lens step, each costing more host time than the GPU spends on it.
A CUDA graph records the whole iteration once (critic steps, G step, lens step,
every optimiser step) and replays it with one launch. What it needs, and how
it gets it:

* **Static inputs.** The step's batch indices, λ(t), α(t) and t travel to the
  GPU in one small int64 packet (λ and α as the bits of float64s), copied from pinned host
  memory into the same device buffer each step; the data set itself lives on
  the GPU and batches are gathered there.
* **Random numbers** come from the run's own seeded generators
  (``Trainer.generators``: G's noise, the penalty interpolates and, with
  ``--tempering noise``, the instance noise), registered with each graph: a
  replay advances them exactly as the eager step would, so both paths draw the
  same noise and a checkpoint's generator states resume the same streams.
* **No host synchronisation inside a step.** Losses, the NaN flag and the
  exit counter are updated in place on the device and read at log steps.
* **Capturable optimisers** (``make_optimizer``): their step counts live on the
  GPU. ``EagerRunner(trainer, on_device=True)`` runs such a trainer op by op
  with the same optimisers and device packet: the reference the benchmark and
  the tests compare the graphs with.
* **One graph per phase** (``Trainer.phase``, a hashable :class:`~tempered_gan.method.exits.Phase`: tempered
  at λ, the lens trained on reconstruction alone after K, faded out by α, or plain), each captured
  after a few eager warm-up steps of its own, which are ordinary training steps, on a side stream (cuDNN's algorithm
  search, optimiser states and cuBLAS workspaces are settled before capture).

Several processes (torchrun) run eagerly: their gradient all-reduce is not
captured (yet).
"""
from __future__ import annotations

import sys
import warnings

import torch

WARMUP_STEPS = 3    # eager steps of a phase before it is captured
HOST_SLOTS = 8      # pinned packets in flight: the host runs at most this many steps ahead


def uses_cuda_graphs(cfg, device: torch.device, dist) -> bool:
    """``--cuda-graphs`` on one CUDA GPU (several processes run eagerly)."""
    return cfg.cuda_graphs and device.type == "cuda" and not dist.active


def make_runner(trainer) -> "EagerRunner | CudaGraphRunner":
    if not uses_cuda_graphs(trainer.cfg, trainer.device, trainer.dist):
        return EagerRunner(trainer, on_device=False)
    if not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
        print("warning: this PyTorch cannot replay seeded generators in CUDA graphs; running eagerly",
              file=sys.stderr)
        return EagerRunner(trainer, on_device=True)
    return CudaGraphRunner(trainer)


# Capturable optimisers warn when they step outside a graph; on our eager
# CUDA path and warm-up steps that is intended (same optimiser on both paths).
warnings.filterwarnings("ignore", message=".*capturable=True.*running without CUDA graph capture.*")
warnings.filterwarnings("ignore", message=".*constructed with capturable=True.*")


class EagerRunner:
    """Runs each iteration op by op. With ``on_device`` it reads its inputs from
    the same device packet as the graph runner, so that it differs from the
    fast path only in how the kernels are launched."""

    def __init__(self, trainer, on_device: bool = False):
        self.trainer = trainer
        self.packet = DevicePacket(trainer) if on_device else None

    def run(self, phase, t: int, idx: torch.Tensor, lam: float, alpha: float) -> torch.Tensor:
        """One iteration; returns its losses (``Trainer.iteration``'s)."""
        if self.packet is None:
            return self.trainer.iteration(phase, idx, lam, alpha, t)
        self.packet.upload(t, idx, lam, alpha)
        return self.trainer.iteration(phase, *self.packet.views())


class DevicePacket:
    """t, λ(t), α(t) and the batch indices of one step in one static device buffer,
    filled from a ring of pinned host buffers (no sync unless the host gets
    ``HOST_SLOTS`` steps ahead of the GPU).

    ``waits`` counts the steps at which the host did wait for the GPU (the copy
    that last read the slot had not finished): the one host synchronisation a
    step may make, and one that ``torch.cuda.set_sync_debug_mode`` does not see.
    On the CPU (tests) the same packet works without pinning or events."""

    def __init__(self, trainer):
        self.critic_steps, self.batch_size = trainer.cfg.critic_steps, trainer.cfg.batch_size
        n = 3 + self.critic_steps * self.batch_size
        self.device = trainer.device
        cuda = self.device.type == "cuda"
        self.buffer = torch.zeros(n, dtype=torch.long, device=self.device)
        self.host = [torch.zeros(n, dtype=torch.long, pin_memory=cuda) for _ in range(HOST_SLOTS)]
        self.done = [torch.cuda.Event() if cuda else None for _ in range(HOST_SLOTS)]
        self.slot = 0
        self.waits = 0

    def upload(self, t: int, idx: torch.Tensor, lam: float, alpha: float) -> None:
        host, done = self.host[self.slot], self.done[self.slot]
        if done is not None and not done.query():   # the copy that last read this slot is still pending
            self.waits += 1
            done.synchronize()
        host[0] = t
        host[1:3] = torch.tensor([float(lam), float(alpha)], dtype=torch.float64).view(torch.long)
        host[3:] = idx.reshape(-1)
        self.buffer.copy_(host, non_blocking=True)
        if done is not None:
            done.record()
        self.slot = (self.slot + 1) % HOST_SLOTS

    def views(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(idx, λ, α, t) on the device, read by the captured kernels at replay time."""
        idx = self.buffer[3:].view(self.critic_steps, self.batch_size)
        lam, alpha = self.buffer[1:3].view(torch.float64).float()
        return idx, lam, alpha, self.buffer[0]


class CudaGraphRunner:
    """Replays each phase's iteration as one CUDA graph."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.packet = DevicePacket(trainer)
        self.stream = torch.cuda.Stream(trainer.device)
        self.graphs: dict[tuple, torch.cuda.CUDAGraph] = {}
        self.outputs: dict[tuple, torch.Tensor] = {}
        self.warm: dict[tuple, int] = {}

    def run(self, phase, t: int, idx: torch.Tensor, lam: float, alpha: float) -> torch.Tensor:
        """One iteration; returns its losses: the graph's static output tensor,
        which every replay of the phase overwrites."""
        trainer = self.trainer
        self.packet.upload(t, idx, lam, alpha)
        graph = self.graphs.get(phase)
        if graph is not None:
            graph.replay()
            return self.outputs[phase]
        current = torch.cuda.current_stream(trainer.device)
        if self.warm.get(phase, 0) < WARMUP_STEPS:
            self.stream.wait_stream(current)
            with torch.cuda.stream(self.stream):
                losses = trainer.iteration(phase, *self.packet.views())
            current.wait_stream(self.stream)
            self.warm[phase] = self.warm.get(phase, 0) + 1
            return losses
        graph = torch.cuda.CUDAGraph()
        for generator in trainer.generators:   # G's noise, penalty interpolates, instance noise
            graph.register_generator_state(generator)
        torch.cuda.synchronize(trainer.device)
        with torch.cuda.graph(graph, stream=self.stream):
            losses = trainer.iteration(phase, *self.packet.views())
        self.graphs[phase], self.outputs[phase] = graph, losses
        graph.replay()   # capture records the work; the replay does it
        return losses

    @property
    def captured(self) -> int:
        return len(self.graphs)
