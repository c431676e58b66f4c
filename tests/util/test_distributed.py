"""Two processes with the gloo backend on the CPU, launched by torchrun as users do."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY_POINTS_ARGS

from tempered_gan.training.randomness import EpochSampler
from tempered_gan.util.distributed import fingerprint

TINY = [*TINY_POINTS_ARGS, "--log-every", "2",
        "--no-progress"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]




def torchrun(*args, script=None, expect=0, env=None, timeout=300):
    """Two processes of ``python -m tempered_gan train ARGS`` (or of ``script``), importing this checkout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    target = [str(script)] if script else ["-m", "tempered_gan", "train"]
    result = subprocess.run([*TORCHRUN, *target, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                            env=env, cwd=ROOT)
    if expect is not None:
        assert result.returncode == expect, result.stderr[-3000:]
    return result


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


def test_two_processes_keep_identical_replicas_and_resume_exactly(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    exit_window = ["--lens-exit", "blend", "--lens-exit-steps", 5]   # resumed at K, inside the exit window
    summary = torchrun("--steps", 6, "--k", 3, *exit_window, "--loss", "wgan-gp", "--out", straight, *TINY).stderr
    state = checkpoint(straight)
    assert state["step"] == 6
    assert len(state["replicas"]) == 2 and state["replicas"][0] == state["replicas"][1]
    assert len(state["rng"]) == 2 and not torch.equal(state["rng"][0]["noise"], state["rng"][1]["noise"])

    torchrun("--steps", 3, "--k", 3, *exit_window, "--loss", "wgan-gp", "--out", split, *TINY)
    torchrun("--resume", split, "--steps", 6)
    resumed = checkpoint(split)
    for net in ("G", "D", "lens"):
        assert all(torch.equal(v, resumed[net][k]) for k, v in state[net].items()), net

    # rank 0 ends with the summary line, whose FID is that of eval on the checkpoint of both processes
    # (eval on rank 0's one thread: at another thread count the FID may differ in its last bits)
    evaluated = subprocess.run([sys.executable, "-m", "tempered_gan", "eval", str(straight)], capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, cwd=ROOT)
    assert evaluated.returncode == 0, evaluated.stderr
    fid = json.loads(evaluated.stdout)["fid"]
    done = [line for line in summary.splitlines() if line.startswith("done: ")]
    assert len(done) == 1 and done[0].startswith("done: 6 steps in ") and f"final FID {fid:.3g}, " in done[0], summary


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


def test_two_processes_evaluate_fid_during_training_and_finish(tmp_path):
    """Rank 0's FID used to go through torchmetrics' compute(), which gathers over the process
    group; rank 1 was at the next all_reduce, so both waited forever. A short collective timeout
    makes the old code fail here in seconds instead of hanging the suite."""
    out = tmp_path / "run"
    torchrun("--steps", 4, "--k", 2, "--eval-every", 2, "--fid-samples", 256, "--out", out, *TINY,
             env={"TEMPERED_GAN_DIST_TIMEOUT": "60"}, timeout=240)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "fid" in r] == [2, 4]
    assert checkpoint(out)["step"] == 4


STUCK = """
import sys, time
from tempered_gan.training.trainer import Trainer
step = Trainer.step

def slow_step(self):   # process 1 stalls before step 3; process 0 waits in that step's first all_reduce
    if self.dist.rank == 1 and self.step_count == 2:
        time.sleep(float(sys.argv[1]))
    return step(self)

Trainer.step = slow_step
from tempered_gan.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_stuck_collective_ends_with_one_clear_error_line(tmp_path):
    """Process 1 stalls for 18 s, process 0 times out after 10 s. The timeout leaves process 0 10 s between two
    collectives: with 3 s, busy cores (writing step 2's log and samples) once made process 1 time out first, waiting
    for process 0 before the stall. (Process 1 sleeps on through torchrun's SIGTERM, a stop request to a run.)"""
    script = tmp_path / "stuck.py"
    script.write_text(STUCK)
    start = time.perf_counter()
    result = torchrun(18, "train", "--steps", 6, "--k", 2, "--out", tmp_path / "run", *TINY,
                      script=script, expect=None, env={"TEMPERED_GAN_DIST_TIMEOUT": "10"}, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "tempered-gan: error:" in line]
    assert lines and "process 0 of 2: a collective operation failed" in lines[0], result.stderr[-3000:]
    assert "Timed out" in lines[0] and "TEMPERED_GAN_DIST_TIMEOUT" in lines[0]
    assert f"tempered_gan{os.sep}" not in result.stderr      # no traceback through our code (torchrun prints its own)
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if "loss_d" in line]
    assert steps == [2]                    # the stall, not the start-up, is what timed out
    assert time.perf_counter() - start < 100


THREADS_AFTER_MAIN = """
import os, sys
from tempered_gan.cli import main
code = main(sys.argv[1:])
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print("gloo threads after main:", sum(n.startswith(("pt_gloo", "gloo")) for n in names), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_a_command_joins_the_collective_threads_before_python_exits(tmp_path):
    """A process group still held after destroy_process_group keeps gloo's worker threads
    alive into the interpreter's finalisation, where one still releasing the last collective's
    tensors aborts the process (SIGABRT, about one exit in twenty under load): the group
    must be gone, and its threads joined, when the command returns."""
    script = tmp_path / "threads.py"
    script.write_text(THREADS_AFTER_MAIN)
    result = torchrun("train", "--steps", 2, "--out", tmp_path / "run", *TINY, script=script)
    counts = [line for line in result.stderr.splitlines() if line.startswith("gloo threads after main:")]
    assert counts == ["gloo threads after main: 0"] * 2, result.stderr[-3000:]


def test_a_bad_timeout_setting_is_one_clear_line(monkeypatch):
    from tempered_gan.errors import UserError
    from tempered_gan.util.distributed import DEFAULT_TIMEOUT_S, collective_timeout
    monkeypatch.delenv("TEMPERED_GAN_DIST_TIMEOUT", raising=False)
    assert collective_timeout() == DEFAULT_TIMEOUT_S
    monkeypatch.setenv("TEMPERED_GAN_DIST_TIMEOUT", "2.5")
    assert collective_timeout() == 2.5
    for bad in ("0", "-1", "nan", "inf", "soon"):
        monkeypatch.setenv("TEMPERED_GAN_DIST_TIMEOUT", bad)
        with pytest.raises(UserError, match="TEMPERED_GAN_DIST_TIMEOUT"):
            collective_timeout()
