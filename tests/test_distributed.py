"""Two processes with the gloo backend on the CPU, launched by torchrun as users do."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from tempered_gan.distributed import fingerprint
from tempered_gan.train import EpochSampler

TINY = ["--batch-size", "32", "--width", "16", "--lens-width", "8", "--lens-blocks", "2", "--log-every", "2",
        "--no-progress"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def torchrun(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*TORCHRUN, "-m", "tempered_gan", "train", *map(str, args)], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)


def test_two_processes_keep_identical_replicas_and_resume_exactly(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    torchrun("--steps", 6, "--k", 3, "--lens-exit-steps", 5, "--loss", "wgan-gp", "--out", straight, *TINY)
    state = checkpoint(straight)
    assert state["step"] == 6
    assert len(state["replicas"]) == 2 and state["replicas"][0] == state["replicas"][1]
    assert len(state["rng"]) == 2 and not torch.equal(state["rng"][0]["noise"], state["rng"][1]["noise"])

    torchrun("--steps", 3, "--k", 3, "--lens-exit-steps", 5, "--loss", "wgan-gp", "--out", split, *TINY)
    torchrun("--resume", split, "--steps", 6)
    resumed = checkpoint(split)
    for net in ("G", "D", "lens"):
        assert all(torch.equal(v, resumed[net][k]) for k, v in state[net].items()), net


def test_processes_draw_disjoint_shards_of_one_permutation():
    a, b = EpochSampler(100, 8, seed=3, rank=0, world=2), EpochSampler(100, 8, seed=3, rank=1, world=2)
    single = EpochSampler(100, 16, seed=3)
    for _ in range(8):                           # crosses an epoch boundary (6 steps of 16 per epoch)
        ia, ib, both = a.next(), b.next(), single.next()
        assert torch.equal(torch.cat([ia, ib]), both)


def test_fingerprint_sees_a_single_changed_weight():
    net = torch.nn.Linear(3, 2)
    before = fingerprint(net, None)
    with torch.no_grad():
        net.weight[0, 0] += 1e-7
    assert fingerprint(net, None) != before
