"""benchmarks/cuda_commands.py (every command on the GPU as a user runs it), run end to
end on the CPU on a 40-image MNIST, and its placement walker shown to name the first tensor that
is not on the asked device ("meta" stands in for a device the CPU cannot have)."""
import importlib.util
import os
import subprocess
import sys

import torch
from helpers import ROOT as PROJECT
from torch import nn

ROOT = str(PROJECT)
SCRIPT = os.path.join(ROOT, "benchmarks", "cuda_commands.py")
spec = importlib.util.spec_from_file_location("cuda_commands", SCRIPT)
cuda_commands = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cuda_commands)


def test_every_command_runs_on_the_cpu_and_every_check_passes(tmp_path, mnist_dir):
    # As gpu_session.sh runs it: from the source tree, PYTHONPATH=. (one thread: tiny nets, shared cores).
    # The timeout guards against a hang, not speed: on cores busy with two studies it took over 300 s.
    env = {**os.environ, "PYTHONPATH": ".", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "benchmarks/cuda_commands.py", "--device", "cpu", "--dataset", "mnist",
                             "--data-dir", str(mnist_dir), "--workdir", str(tmp_path / "work"), "--steps", "4",
                             "--timeout", "600"],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    rows = {line[:18].strip(): line[18:].split()[0] for line in lines[1:-1]}
    assert rows == {name: "ok" for name in cuda_commands.CHECKS}
    assert lines[-1].startswith(f"cuda_commands: {len(rows)} of {len(rows)} ok")
    assert (tmp_path / "work" / "grid.png").is_file() and (tmp_path / "work" / "compare" / "report.md").is_file()


def test_a_failed_command_is_one_line_its_output_in_its_log_and_exit_1(tmp_path, mnist_dir, capsys):
    code = cuda_commands.main(["--device", "cpu", "--dataset", "mnist", "--data-dir", str(mnist_dir),
                               "--workdir", str(tmp_path), "--only", "eval lens"])   # no lens run to evaluate
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[1].startswith("eval lens          failed") and "tempered-gan: error:" in out[1]
    assert out[-1].startswith("cuda_commands: 0 of 1 ok") and out[-1].endswith("; failed: eval lens")
    assert "exit 2" in (tmp_path / "logs" / "eval-lens.log").read_text()


def test_the_walker_names_the_first_tensor_off_the_device():
    net = nn.Sequential(nn.Linear(2, 3, device="meta"), nn.BatchNorm1d(3, device="meta"))
    assert cuda_commands.placement_offender(cuda_commands.named("D", net), "meta") is None
    net[1].register_buffer("stray", torch.zeros(1))
    assert cuda_commands.placement_offender(cuda_commands.named("D", net), "meta") == \
        "D.1.stray is on cpu, not meta"
    assert cuda_commands.placement_offender([("noise generator", torch.Generator())], "meta") == \
        "noise generator is on cpu, not meta"


def test_the_walker_reads_optimiser_states_and_leaves_eager_adams_step_counts_on_the_cpu():
    net = nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    names = [name for name, _ in cuda_commands.optimizer_items("opt_d", opt)]
    assert names == ["opt_d.state[0].exp_avg", "opt_d.state[0].exp_avg_sq",
                     "opt_d.state[1].exp_avg", "opt_d.state[1].exp_avg_sq"]   # no "step": on the CPU by design
    assert cuda_commands.placement_offender(cuda_commands.optimizer_items("opt_d", opt), "meta") == \
        "opt_d.state[0].exp_avg is on cpu, not meta"


def test_the_walk_of_a_trainer_covers_nets_optimisers_generators_bookkeeping_losses_and_samples(mnist_dir):
    from tempered_gan.config.train_config import TrainConfig, resolve
    from tempered_gan.data.loaders import load_dataset
    from tempered_gan.training.trainer import LOSSES, Trainer

    common = {"G", "D", "opt_g", "opt_d", "noise generator", "penalty generator", "below_tolerance", "first_bad",
              "samples G(Z)", "samples T(X)", "samples X"}
    for tempering, own in (("lens", {"lens", "opt_lens"}), ("noise", {"instance-noise generator"}), ("blur", set())):
        reported = ("loss_d", "loss_g", "loss_lens_rec") + (("loss_lens_adv",) if tempering == "lens" else ())
        own = own | {f"{what} {name}" for name in LOSSES for what in ("sum of", "count of")}   # every loss's sum
        own = own | {f"the step's {name}" for name in reported}                              # what this step had
        cfg = resolve(TrainConfig(dataset="mnist", data_dir=str(mnist_dir), device="cpu", tempering=tempering, k=10,
                                  **cuda_commands.TINY))
        trainer = Trainer.create(cfg, load_dataset("mnist", str(mnist_dir)), torch.device("cpu"))
        names = [name for name, _ in cuda_commands.trainer_items(trainer, trainer.step())]
        assert {name.split(".")[0] for name in names} == common | own, tempering
        assert not any(name.endswith(".step") for name in names)          # eager Adam's counts: on the CPU by design
        assert cuda_commands.placement_offender(cuda_commands.trainer_items(trainer, trainer.step()), "cpu") is None
