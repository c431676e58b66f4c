"""The CUDA fast path: the same run as the eager path, exact resume, NaN stop,
phase changes, and no host synchronisation inside a replayed step.

The GPU cases (``needs_cuda``) skip without one (CI has none; they run on the
a machine with a CUDA GPU: ``python -m pytest tests/training/test_cuda_graphs.py``, or
benchmarks/gpu_session.sh). Everything they rely on that needs no GPU runs on
the CPU here, so that a mistake in it never costs device time: each case's
configuration and trainer, the device packet (λ, α, t as tensors), the phase
schedule and exit step, resuming across ``--cuda-graphs`` (the
optimisers' flags), eval and sample of a ``--cuda-graphs`` run, and the
benchmark's configurations. Written on machines without a GPU: the GPU cases
have not yet run.
"""
import json
import os
import sys

import pytest
import torch
from helpers import ROOT, TINY_IMAGES, TINY_POINTS

from tempered_gan.cli.main import main
from tempered_gan.config.train_config import CONFIG, TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.method import losses
from tempered_gan.method.exits import PLAIN, TEMPERED, Reconstructing
from tempered_gan.training import loop as train_module
from tempered_gan.training import trainer as trainer_module
from tempered_gan.training.checkpoint import CHECKPOINT
from tempered_gan.training.cuda_graphs import HOST_SLOTS, WARMUP_STEPS, CudaGraphRunner, EagerRunner
from tempered_gan.training.loop import NonFiniteLoss
from tempered_gan.training.scalars import stacked
from tempered_gan.training.trainer import Trainer

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

IMAGES = dict(TINY_IMAGES, k=1000)
# The GPU cases, as options beyond IMAGES; each one also builds and steps on the CPU.
CASES = {"gan": dict(loss="gan"), "lsgan": dict(loss="lsgan"), "wgan-gp": dict(loss="wgan-gp"),
         "noise": dict(tempering="noise"), "blur": dict(tempering="blur")}
# Phases: the lens up to K = 6, then trained on reconstruction alone (converge) until the rule
# ends it (tolerance 1e9: every step counts; checked every 6 steps, so at 12), then plain.
# Each phase lasts at least WARMUP_STEPS + 1 steps, so each gets a graph of its own.
PHASES = dict(TINY_POINTS, k=6,
              lens_exit="converge", lens_exit_tolerance=1e9, lens_exit_patience=6, log_every=5, steps=30,
              sample_every=30)
EXITED_AT = 12


@pytest.fixture()
def mnist(tmp_path):
    from helpers import write_mnist
    return load_dataset("mnist", str(write_mnist(tmp_path / "mnist", n=64)))


@pytest.fixture()
def deterministic():
    before = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    yield
    torch.backends.cudnn.deterministic = before


def fast_config(device: str = "cuda", **options) -> TrainConfig:
    """A --cuda-graphs configuration of the tiny image nets (the data set's own nets)."""
    return resolve(TrainConfig(**{**IMAGES, "device": device, "cuda_graphs": True, **options}))


def cuda_trainer(data, eager=False, device="cuda", **options):
    """A --cuda-graphs trainer; ``eager`` runs it op by op with the same
    optimisers and device packet (the reference for the graphs). On the CPU it
    is the eager trainer, and ``eager`` gives it the device packet."""
    trainer = Trainer.create(fast_config(device, **options), data, torch.device(device))
    if eager:
        trainer.runner = EagerRunner(trainer, on_device=True)
    return trainer


def run_steps(trainer, n):
    return torch.stack([stacked(trainer.step()).clone() for _ in range(n)]).cpu()


def train_run(cfg, data, run_dir, **options):
    """train() into a new folder (the command line makes it; train() expects it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return train_module.train(cfg, data, run_dir, progress=False, **options)


# The cases that train whole runs run on the CPU too (eagerly), so that their set-up is checked in CI.
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


def on(device: str) -> dict:
    return dict(device=device, cuda_graphs=device == "cuda")


# --- on the CPU: what the GPU cases rely on -----------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
def test_every_gpu_case_builds_and_its_device_packet_matches_host_numbers_on_the_cpu(mnist, case):
    """The cases' configurations fit the data (image nets for 1×32×32), and an
    iteration fed λ(t), α(t) and t as tensors from the device packet, as a graph
    is, trains as one fed host numbers."""
    host = cuda_trainer(mnist, device="cpu", steps=20, **CASES[case])
    packet = cuda_trainer(mnist, eager=True, device="cpu", steps=20, **CASES[case])
    assert host.cfg.arch != "mlp" and host.runner.packet is None and packet.runner.packet is not None
    a, b = run_steps(host, 4), run_steps(packet, 4)
    assert torch.isfinite(a).all()
    torch.testing.assert_close(b, a)
    for (name, p), q in zip(host.G.state_dict().items(), packet.G.state_dict().values()):
        torch.testing.assert_close(q, p, msg=f"G.{name}")
    for g, h in zip(host.generators, packet.generators):
        assert torch.equal(g.get_state(), h.get_state())


def test_the_phase_run_ends_the_lens_where_the_gpu_case_expects_it_on_the_cpu(tmp_path):
    phases = []
    record = Trainer.phase

    def phase(self, t):
        phases.append(record(self, t))
        return phases[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "phase", phase)
        train_run(resolve(TrainConfig(device="cpu", **PHASES)), load_dataset("mixture-ring8"), tmp_path / "run")
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    assert state["lens_exited_at"] == EXITED_AT
    spans = {}
    for t, p in enumerate(phases, 1):
        spans.setdefault(p, []).append(t)
    assert {p: (s[0], s[-1]) for p, s in spans.items()} == {
        TEMPERED: (1, 6), Reconstructing(tolerance=PHASES["lens_exit_tolerance"]): (7, EXITED_AT),
        PLAIN: (EXITED_AT + 1, 30)}
    assert all(len(s) > WARMUP_STEPS for s in spans.values())


def _optimizers(trainer):
    return [trainer.opt_g, trainer.opt_d] + ([trainer.tempering.optimizer] if trainer.lens is not None else [])


def test_resume_across_cuda_graphs_keeps_each_trainers_own_optimiser_flags(mnist, monkeypatch):
    """PyTorch's load_state_dict restores capturable/fused from the checkpoint:
    an eager run resumed with --cuda-graphs then raised in Adam.step at capture.
    The trainer keeps the flags it was made with, and the state itself passes
    through unchanged (eager → fast path's optimisers → eager = straight)."""
    straight = cuda_trainer(mnist, device="cpu", steps=8)
    run_steps(straight, 8)
    first = cuda_trainer(mnist, device="cpu", steps=8)
    run_steps(first, 4)

    # The fast path's trainer as Trainer.create makes it on a GPU (capturable, fused Adam), here on the CPU.
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    monkeypatch.setattr(trainer_module, "uses_cuda_graphs", lambda *args: True)
    graphs = cuda_trainer(mnist, device="cpu", steps=8)
    monkeypatch.undo()
    graphs.load_state_dict(first.state_dict())
    for opt in _optimizers(graphs):
        assert all(g["capturable"] and g["fused"] for g in opt.param_groups)
        assert {(s["step"].dtype, s["step"].device.type, float(s["step"])) for s in opt.state.values()} == \
            {(torch.float32, "cpu", 4.0)}

    back = cuda_trainer(mnist, device="cpu", steps=8)
    back.load_state_dict(graphs.state_dict())
    for opt in _optimizers(back):
        assert not any(g["capturable"] or g["fused"] for g in opt.param_groups)
    run_steps(back, 4)
    for net in ("G", "D", "lens"):
        for (name, p), q in zip(getattr(straight, net).state_dict().items(), getattr(back, net).state_dict().values()):
            torch.testing.assert_close(q, p, msg=f"{net}.{name}")


def _as_if_trained_with_cuda_graphs(run_dir):
    """Mark a CPU run folder as a --cuda-graphs GPU run saves it: the option in
    both configurations, capturable fused optimisers in the checkpoint."""
    config = json.loads((run_dir / CONFIG).read_text())
    (run_dir / CONFIG).write_text(json.dumps(dict(config, cuda_graphs=True, device="auto")))
    state = torch.load(run_dir / CHECKPOINT, weights_only=False)
    state["config"] = dict(state["config"], cuda_graphs=True, device="auto")
    for key in ("opt_g", "opt_d", "opt_lens"):
        for group in state[key]["param_groups"]:   # the lens is still active at step 4 (K = 100)
            group.update(capturable=True, fused=True)
    torch.save(state, run_dir / CHECKPOINT)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_eval_and_sample_of_a_cuda_graphs_run_work_without_cuda(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "mixture-ring8", "--steps", "4", "--k", "100", "--batch-size", "32",
                     "--width", "8", "--lens-width", "4", "--lens-blocks", "1", "--device", "cpu",
                     "--out", str(run)]) == 0
    _as_if_trained_with_cuda_graphs(run)
    capsys.readouterr()
    assert main(["sample", str(run), "--out", str(tmp_path / "s.png"), "--count", "16"]) == 0
    assert (tmp_path / "s.png").exists()
    assert main(["eval", str(run), "--fid-samples", "256"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 4


def test_the_benchmarks_configurations_build_on_the_cpu(mnist, tmp_path):
    """bench_gpu.py's arms and speed options resolve and build the paper's nets
    (it runs only on a GPU, so a mistake here would be found there)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    args = bench_gpu.build_parser().parse_args(["--dataset", "mnist"])
    for arm, options in bench_gpu.ARMS.items():
        for extra in [{}] + list(bench_gpu.SPEED_OPTIONS.values()):
            cfg = bench_gpu.config(args, device="cpu", cuda_graphs=False, **options, **extra)
            assert (cfg.batch_size, cfg.width, cfg.lens_width, cfg.lens_blocks) == \
                (64, 128 if cfg.loss == "wgan-gp" else 64, 32, 8)
            trainer = Trainer.create(cfg, mnist, torch.device("cpu"))
            assert (trainer.lens is not None) == ("lens" in arm)


# --- on a GPU ---------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("loss", ["gan", "lsgan", "wgan-gp"])
def test_graph_replays_the_eager_iteration(mnist, loss, deterministic):
    eager = cuda_trainer(mnist, loss=loss, eager=True, steps=20)
    fast = cuda_trainer(mnist, loss=loss, steps=20)
    assert isinstance(eager.runner, EagerRunner) and isinstance(fast.runner, CudaGraphRunner)
    a, b = run_steps(eager, 12), run_steps(fast, 12)
    assert fast.runner.captured == 1            # steps 4 … 12 were replays of one graph
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    for net in ("G", "D", "lens"):
        for (name, p), q in zip(getattr(eager, net).state_dict().items(), getattr(fast, net).state_dict().values()):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=f"{net}.{name}")
    # the generators advanced alike: same noise from here on
    assert torch.equal(eager.noise.get_state(), fast.noise.get_state())


@needs_cuda
@pytest.mark.parametrize("tempering", ["noise", "blur"])
def test_graph_replays_the_baselines_and_advances_the_instance_noise_alike(mnist, tempering, deterministic):
    """λ arrives as a device scalar: σ(t) = σ₀·λ(t) is never read on the host."""
    eager = cuda_trainer(mnist, tempering=tempering, eager=True, steps=20)
    fast = cuda_trainer(mnist, tempering=tempering, steps=20)
    a, b = run_steps(eager, 8), run_steps(fast, 8)
    assert fast.runner.captured == 1
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(eager.G.state_dict().items(), fast.G.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=f"G.{name}")
    for g, h in zip(eager.generators, fast.generators):
        assert torch.equal(g.get_state(), h.get_state())
    torch.cuda.set_sync_debug_mode("error")
    try:
        fast.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@needs_cuda
def test_no_host_sync_inside_replayed_steps(mnist):
    """With the GPU held up, the host runs HOST_SLOTS replayed steps ahead without
    waiting (no sync that set_sync_debug_mode sees, and none on the packet ring's
    events, which it does not see), and waits at the next one."""
    trainer = cuda_trainer(mnist, loss="wgan-gp", steps=40)
    assert isinstance(trainer.runner, CudaGraphRunner)
    run_steps(trainer, 5)                       # warm-up and capture
    packet = trainer.runner.packet
    torch.cuda.synchronize()
    waits = packet.waits
    torch.cuda._sleep(2_000_000_000)            # about a second of GPU time ahead of every step below
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(HOST_SLOTS):
            trainer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert packet.waits == waits                # the GPU is still asleep: nothing waited for it
    trainer.step()                              # this slot's last copy is queued behind the sleep
    assert packet.waits == waits + 1
    torch.cuda.synchronize()
    assert trainer.runner.captured == 1


@needs_cuda
def test_phases_get_graphs_of_their_own_and_the_converge_exit_works(tmp_path, deterministic, monkeypatch):
    """The exit step itself is checked on the CPU (test_the_phase_run_…)."""
    ring = load_dataset("mixture-ring8")
    make_runner = trainer_module.make_runner
    runs, runners = {}, []
    for eager in (True, False):
        out = tmp_path / f"eager{eager}"
        monkeypatch.setattr(trainer_module, "make_runner",
                            (lambda tr: EagerRunner(tr, on_device=True)) if eager
                            else (lambda tr: runners.append(make_runner(tr)) or runners[-1]))
        train_run(resolve(TrainConfig(device="cuda", cuda_graphs=True, **PHASES)), ring, out)
        runs[eager] = torch.load(out / "checkpoint.pt", weights_only=False)
    assert runs[False]["lens_exited_at"] == runs[True]["lens_exited_at"] == EXITED_AT
    assert isinstance(runners[0], CudaGraphRunner) and runners[0].captured == 3   # lens, converge, plain
    for k, v in runs[True]["G"].items():
        torch.testing.assert_close(runs[False]["G"][k], v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_resume_on_the_fast_path_continues_the_same_run(tmp_path, mnist, deterministic, device):
    options = dict(IMAGES, steps=16, log_every=4, sample_every=16, checkpoint_every=8, **on(device))
    exact = device == "cpu"                      # one thread, deterministic kernels: the same bits
    _straight_and_split_agree(tmp_path, mnist, options, {}, {}, rtol=0 if exact else 1e-5, atol=0 if exact else 1e-6)


def _straight_and_split_agree(tmp_path, mnist, options, first_half, second_half, rtol, atol):
    """16 steps straight against 8 + resume + 8 (each half with its own extra options): same weights."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_run(resolve(TrainConfig(**options)), mnist, straight)
    train_run(resolve(TrainConfig(**dict(options, steps=8, **first_half))), mnist, split)
    train_run(resolve(TrainConfig(**dict(options, **second_half))), mnist, split, resume=True)
    a = torch.load(straight / "checkpoint.pt", weights_only=False)
    b = torch.load(split / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 16
    for net in ("G", "D", "lens"):
        for k, v in a[net].items():
            torch.testing.assert_close(b[net][k], v, rtol=rtol, atol=atol, msg=f"{net}.{k}")


@needs_cuda
@pytest.mark.parametrize("before, after", [(False, True), (True, False)])
def test_resume_adds_or_drops_the_fast_path(tmp_path, mnist, deterministic, before, after):
    """An eager run resumed with --cuda-graphs captures (and the reverse steps
    eagerly), close to the run trained one way throughout (the optimisers differ
    in implementation only: fused against foreach Adam)."""
    options = dict(IMAGES, steps=16, log_every=4, sample_every=16, checkpoint_every=8, device="cuda")
    _straight_and_split_agree(tmp_path, mnist, options, {"cuda_graphs": before}, {"cuda_graphs": after},
                              rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_nan_stops_the_fast_path_and_keeps_the_last_good_checkpoint(tmp_path, mnist, monkeypatch, device):
    scale = torch.ones((), device=device)       # turned to NaN on the device after step 9
    original = Trainer.step

    def step(self):
        losses = original(self)
        if self.step_count == 9:
            scale.fill_(float("nan"))
        return losses

    monkeypatch.setattr(Trainer, "step", step)
    objective = losses.OBJECTIVES["gan"]
    monkeypatch.setitem(losses.OBJECTIVES, "gan",
                        type(objective)("gan", objective.d_loss, lambda f: objective.g_loss(f) * scale,
                                        objective.lens_loss))
    cfg = resolve(TrainConfig(**dict(IMAGES, steps=20, log_every=4, checkpoint_every=4, **on(device))))
    with pytest.raises(NonFiniteLoss, match="at step 10"):
        train_run(cfg, mnist, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 8


# --- the GPU benchmark and GPU check script without a GPU ----------------------



@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_bench_gpu_without_cuda_says_so_in_one_line():
    import subprocess
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_gpu.py"), "--parts", "speed"],
                            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert "needs a CUDA GPU" in result.stderr and "Traceback" not in result.stderr
