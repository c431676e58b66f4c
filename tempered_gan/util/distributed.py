"""Data-parallel training on several processes (``torchrun``), one GPU each.

Why not the ``DistributedDataParallel`` wrapper: one TAN iteration updates
three networks in turn while the others are frozen, runs D forward twice before
one backward (on L(X) and on G(Z)), and takes a gradient penalty with a double
backward. DDP's reducer assumes one forward per backward of the wrapped module.
We therefore do what DDP does underneath, explicitly: every process holds the
same weights (same seed streams), computes gradients on its own shard of the
batch, and the gradients of **only the network being updated** are averaged
with one ``all_reduce`` before its optimiser steps (as StyleGAN2-ADA does).

Batch norm keeps per-process statistics: each process normalises its own batch
of ``--batch-size`` samples, exactly as a single-process run of that batch size
would (SyncBatchNorm needs CUDA and would make a 2-GPU run differ from a 1-GPU
run of the same per-GPU batch). Running statistics, used only for samples and
FID, are rank 0's, and rank 0 alone writes logs, samples and checkpoints.

Rank 0 alone evaluates FID, so nothing it runs there may be a collective: the
torchmetrics objects in ``metrics/fid.py`` are built with ``sync_on_compute=False``
(by default their ``compute()`` gathers over the default process group, which
the other ranks never join, so the run would hang). Every collective of the training loop is
reached by all ranks at the same step. The process group carries a timeout
(``TEMPERED_GAN_DIST_TIMEOUT`` seconds, default 30 minutes), so a collective that
a process never joins ends the run with an error instead of hanging; it must
exceed the longest rank-0-only stretch (building the FID evaluator, one
evaluation), during which the other ranks wait at the next collective.

Shutting down: the CLI destroys the process group when a command ends, which
joins gloo's worker threads while the interpreter is still whole. That works
only if nothing else still holds the group, and ``torch.distributed.nn.functional``
(imported by ``torch._dynamo``, which the optimisers import on first use)
captures the default group in its functions' default arguments when it is first
imported after the group exists. The group then outlived ``destroy_process_group``,
its worker threads lived on into the interpreter's finalisation, and a worker
still releasing the tensors of the last collective died taking the GIL there
(``terminate called without an active exception``, SIGABRT, about one exit in
twenty on a busy machine). :func:`init_from_env` therefore imports that module
before it joins the group.
"""
from __future__ import annotations

import datetime
import hashlib
import math
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tempered_gan.errors import UserError

TIMEOUT_ENV = "TEMPERED_GAN_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


SINGLE_PROCESS = Dist()


def collective_timeout() -> float:
    """Seconds a collective may wait for the other processes: ``$TEMPERED_GAN_DIST_TIMEOUT`` or 30 minutes."""
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise UserError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return seconds


def init_from_env() -> Dist:
    """Join the process group that ``torchrun`` describes in the environment;
    a single process (no ``WORLD_SIZE``, or 1) needs no group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE_PROCESS
    if not dist.is_initialized():
        import torch.distributed.nn.functional  # noqa: F401  (before the group exists: see the module's docstring)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo",
                                timeout=datetime.timedelta(seconds=collective_timeout()))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank)


def average_gradients(module: nn.Module, world: int) -> None:
    """Average ``module``'s gradients over the processes in one all_reduce."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if world <= 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def any_process(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on any process (all processes must call it)."""
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def fingerprint(*modules: nn.Module | None) -> str:
    """A hash of the modules' parameters, to check that replicas are identical."""
    h = hashlib.sha256()
    for m in modules:
        for p in (m.parameters() if m is not None else ()):
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that timed out or lost its peers (gloo and NCCL raise RuntimeError)."""
    if not isinstance(exc, RuntimeError) or not (dist.is_available() and dist.is_initialized()):
        return False
    text = str(exc).lower()
    return isinstance(exc, getattr(dist, "DistError", ())) or any(
        s in text for s in ("timed out", "timeout", "connection closed by peer", "connection reset by peer"))


def gather(obj, world: int) -> list:
    """``obj`` from every process, in rank order."""
    if world <= 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def on_main(dist_: Dist, action) -> None:
    """Run ``action`` on rank 0 alone (e.g. take the run folder's lock: one holder
    per run, whatever the number of processes); when it fails, every process
    raises its error, so none waits at a collective for a rank that has left."""
    error = None
    if dist_.main:
        try:
            action()
        except UserError as exc:
            error = str(exc)
    if dist_.active:
        box = [error]
        dist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise UserError(error if dist_.main else f"process 0 stopped: {error}")


def barrier(dist_: Dist) -> None:
    if dist_.active:
        dist.barrier()


def collective_failure_message(exc: BaseException) -> str:
    """The one line a process ends with when a collective failed (``is_collective_failure``)."""
    detail = re.sub(r"^\[[^\]]*\]\s*", "", (str(exc).strip() or type(exc).__name__).splitlines()[0])
    detail = detail.split(". ")[0].rstrip(".")      # gloo: "[file.cc:78] Timed out waiting 2000ms for ..."
    return (f"process {dist.get_rank()} of {dist.get_world_size()}: a collective operation failed ({detail}); "
            f"another process has stopped or is stuck (timeout {collective_timeout():g} s, {TIMEOUT_ENV}); "
            "the last checkpoint is kept")
