"""The CUDA fast path: the same run as the eager path, exact resume, NaN stop,
phase changes, and no host synchronisation inside a replayed step.

These need a CUDA GPU and skip without one (CI has none; they run on the lent
GPU machine: ``python -m pytest tests/test_cuda_graphs.py``). Written in a
session without a GPU: not yet run (issue 10).
"""
import pytest
import torch

from tempered_gan import train as train_module
from tempered_gan.config import TrainConfig, resolve
from tempered_gan.cuda_graphs import CudaGraphRunner, EagerRunner
from tempered_gan.data import load_dataset
from tempered_gan.train import NonFiniteLoss, Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY_IMAGES = dict(dataset="mnist", batch_size=8, width=4, z_dim=8, lens_width=4, lens_blocks=1, k=1000)


@pytest.fixture()
def mnist(tmp_path):
    from test_data import write_mnist
    return load_dataset("mnist", str(write_mnist(tmp_path / "mnist", n=64)))


@pytest.fixture()
def deterministic():
    before = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    yield
    torch.backends.cudnn.deterministic = before


def cuda_trainer(data, eager=False, **options):
    """A --cuda-graphs trainer; ``eager`` runs it op by op with the same
    optimisers and inputs (the reference for the graphs)."""
    trainer = Trainer.create(resolve(TrainConfig(device="cuda", cuda_graphs=True, **options)), data,
                             torch.device("cuda"))
    if eager:
        trainer.runner = EagerRunner(trainer, on_device=True)
    return trainer


def run_steps(trainer, n):
    return torch.stack([trainer.step().clone() for _ in range(n)]).cpu()


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


def test_no_host_sync_inside_replayed_steps(mnist):
    trainer = cuda_trainer(mnist, loss="wgan-gp", steps=20)
    assert isinstance(trainer.runner, CudaGraphRunner)
    run_steps(trainer, 5)                       # warm-up and capture
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            trainer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.runner.captured == 1


def test_phases_get_graphs_of_their_own_and_retirement_works(tmp_path, deterministic, monkeypatch):
    ring = load_dataset("mixture-ring8")
    make_runner = train_module.make_runner
    options = dict(dataset="mixture-ring8", batch_size=32, width=16, lens_width=8, lens_blocks=2, k=6,
                   retire_tolerance=1e9, retire_patience=2, log_every=5, steps=30, sample_every=30)
    runs = {}
    for eager in (True, False):
        out = tmp_path / f"eager{eager}"
        monkeypatch.setattr(train_module, "make_runner",
                            (lambda tr: EagerRunner(tr, on_device=True)) if eager else make_runner)
        train_module.train(resolve(TrainConfig(device="cuda", cuda_graphs=True, **options)), ring, out,
                           progress=False)
        runs[eager] = torch.load(out / "checkpoint.pt", weights_only=False)
    assert runs[False]["lens_retired_at"] == runs[True]["lens_retired_at"] == 10
    for k, v in runs[True]["G"].items():
        torch.testing.assert_close(runs[False]["G"][k], v, rtol=1e-5, atol=1e-6)


def test_resume_on_the_fast_path_continues_the_same_run(tmp_path, mnist, deterministic):
    options = dict(TINY_IMAGES, steps=16, log_every=4, sample_every=16, checkpoint_every=8, device="cuda",
                   cuda_graphs=True)
    straight, split = tmp_path / "straight", tmp_path / "split"
    train_module.train(resolve(TrainConfig(**options)), mnist, straight, progress=False)
    train_module.train(resolve(TrainConfig(**dict(options, steps=8))), mnist, split, progress=False)
    train_module.train(resolve(TrainConfig(**options)), mnist, split, resume=True, progress=False)
    a = torch.load(straight / "checkpoint.pt", weights_only=False)
    b = torch.load(split / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 16
    for net in ("G", "D", "lens"):
        for k, v in a[net].items():
            torch.testing.assert_close(b[net][k], v, rtol=1e-5, atol=1e-6, msg=f"{net}.{k}")


def test_nan_stops_the_fast_path_and_keeps_the_last_good_checkpoint(tmp_path, mnist, monkeypatch):
    scale = torch.ones((), device="cuda")       # turned to NaN on the device after step 9
    original = Trainer.step

    def step(self):
        losses = original(self)
        if self.step_count == 9:
            scale.fill_(float("nan"))
        return losses

    monkeypatch.setattr(Trainer, "step", step)
    objective = train_module.OBJECTIVES["gan"]
    monkeypatch.setitem(train_module.OBJECTIVES, "gan",
                        type(objective)("gan", objective.d_loss, lambda f: objective.g_loss(f) * scale,
                                        objective.lens_loss))
    cfg = resolve(TrainConfig(**dict(TINY_IMAGES, steps=20, log_every=4, checkpoint_every=4, device="cuda",
                                     cuda_graphs=True)))
    with pytest.raises(NonFiniteLoss, match="at step 10"):
        train_module.train(cfg, mnist, tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 8
