"""The baselines --tempering noise and blur: their definitions, that they touch
only what they should, identical starts, exact resume and nothing after K."""
import copy
import json
import math

import pytest
import torch
from helpers import TINY_IMAGES, TINY_POINTS

from tempered_gan import GaussianBlur, InstanceNoise, LambdaSchedule, gaussian_blur
from tempered_gan.cli.main import main
from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.studies.arms import arm_config
from tempered_gan.training.randomness import seed_for
from tempered_gan.training.snapshots import samples
from tempered_gan.training.trainer import Trainer

TINY = ["--batch-size", "8", "--width", "4", "--z-dim", "8", "--lens-width", "4", "--lens-blocks", "1",
        "--log-every", "2", "--no-progress"]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    from helpers import write_mnist
    return write_mnist(tmp_path_factory.mktemp("mnist"), n=40)


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_dataset("mnist", str(mnist_dir))


def trainer(data, **options):
    base = TINY_POINTS if data.kind == "points" else TINY_IMAGES
    return Trainer.create(resolve(TrainConfig(**{**base, **options})), data, torch.device("cpu"))


def run(*argv):
    return main([str(a) for a in argv])


class Replay:
    """What one step of ``tr`` will draw, from copies of its streams: the batches,
    G's noise, the penalty interpolates and the instance noise."""

    def __init__(self, tr):
        self.sampler = copy.deepcopy(tr.sampler)
        self.z = torch.Generator().set_state(tr.noise.get_state())
        self.penalty = torch.Generator().set_state(tr.penalty_noise.get_state())
        gens = tr.tempering.generators if tr.tempering else []
        self.eps = torch.Generator().set_state(gens[0].get_state()) if gens else None
        self.G = copy.deepcopy(tr.G)
        self.tr = tr

    def x(self):
        return self.tr.data.batch(self.sampler.next())

    def z_(self):
        return torch.randn(self.tr.cfg.batch_size, self.tr.cfg.z_dim, generator=self.z)

    def eps_(self, shape):
        return torch.randn(shape, generator=self.eps)


def record_inputs(module, store):
    return module.register_forward_pre_hook(lambda m, args: store.append(args[0].detach().clone()))


# --- σ(t) -------------------------------------------------------------------------

@pytest.mark.parametrize("cls,sigma0", [(InstanceNoise, 0.5), (GaussianBlur, 2.0)])
def test_sigma_is_sigma0_times_the_sine_lambda(cls, sigma0):
    k = 4
    tempering = cls(LambdaSchedule("sine", k=k), sigma=sigma0)
    assert tempering.sigma(0) == sigma0                                      # t = 0: λ = 1
    assert tempering.sigma(k // 2) == pytest.approx(sigma0 * (1 - math.sin(math.pi / 4)))   # K/2: 1 − sin(π/4)
    assert tempering.sigma(k) == pytest.approx(0.0, abs=1e-15)               # K: λ = 0
    assert tempering.sigma(k + 1) == 0.0                                     # after K
    constant = cls(LambdaSchedule("constant", value=0.5), sigma=sigma0)
    assert constant.sigma(10 ** 6) == 0.5 * sigma0


@pytest.mark.parametrize("t", [1, 2, 3])
def test_the_trainer_uses_sigma_of_the_step(ring, t):
    """D's real input at step t is X + σ₀·λ(t)·ε, ε from the instance-noise stream."""
    tr = trainer(ring, tempering="noise", noise_sigma=0.5, k=4, steps=8)
    for _ in range(t - 1):
        tr.step()
    replay, seen = Replay(tr), []
    record_inputs(tr.D, seen)
    tr.step()
    x = replay.x()
    sigma = 0.5 * (1 - math.sin(t * math.pi / 8))
    torch.testing.assert_close(seen[0], x + sigma * replay.eps_(x.shape), rtol=0, atol=1e-6)


# --- instance noise: both of D's inputs, and only D's ----------------------------------

def test_noise_reaches_both_d_inputs_and_only_ds(ring):
    tr = trainer(ring, tempering="noise", noise_sigma=0.5, k=4, steps=8)
    plain = trainer(ring, tempering="none", k=4, steps=8)
    replay = Replay(tr)
    d_in, g_in, g_out, plain_g_in = [], [], [], []
    record_inputs(tr.D, d_in)

    def record_g(module, args, out):
        g_in.append(args[0].clone())
        g_out.append(out.detach().clone())

    tr.G.register_forward_hook(record_g)
    record_inputs(plain.G, plain_g_in)
    tr.step()
    plain.step()
    sigma = 0.5 * (1 - math.sin(math.pi / 8))                    # σ(1)
    x, z1, z2 = replay.x(), replay.z_(), replay.z_()
    with torch.no_grad():
        f1, f2 = replay.G(z1), replay.G(z2)
    e_real, e_fake, e_g = (replay.eps_(x.shape) for _ in range(3))   # drawn in the order D sees them
    assert len(d_in) == 3                                        # D's step: real, fake; G's step: fake
    torch.testing.assert_close(d_in[0], x + sigma * e_real, rtol=0, atol=1e-6)
    torch.testing.assert_close(d_in[1], f1 + sigma * e_fake, rtol=0, atol=1e-6)
    torch.testing.assert_close(d_in[2], f2 + sigma * e_g, rtol=0, atol=1e-6)   # G's step: D sees noisy G(Z) too
    assert all((a - b).abs().mean() > 0.1 * sigma for a, b in zip(d_in, (x, f1, f2)))   # the noise is there
    # G: its input is Z itself (the same Z as the arm without noise), its output clean G(Z).
    assert len(g_in) == 2 and torch.equal(g_in[0], z1) and torch.equal(g_in[1], z2)
    assert all(torch.equal(a, b) for a, b in zip(g_in, plain_g_in))
    torch.testing.assert_close(g_out[0], f1, rtol=0, atol=1e-6)
    torch.testing.assert_close(g_out[1], f2, rtol=0, atol=1e-6)


def test_gradient_penalty_interpolates_the_noisy_inputs_d_saw(ring):
    tr = trainer(ring, tempering="noise", loss="wgan-gp", k=4, steps=8)
    replay = Replay(tr)
    seen = []
    record_inputs(tr.D, seen)
    tr.step()
    real, fake, mixed = seen[:3]                                 # first critic step: D(real), D(fake), D(x̂)
    alpha = torch.rand(real.shape[0], generator=replay.penalty).view(-1, 1)
    torch.testing.assert_close(mixed, alpha * real + (1 - alpha) * fake, rtol=0, atol=1e-6)
    assert not torch.allclose(real, replay.x(), atol=1e-3)


# --- the blur -------------------------------------------------------------------------

def test_blur_is_the_identity_at_sigma_zero():
    x = torch.randn(4, 3, 32, 32)
    for sigma in (0.0, torch.tensor(0.0), torch.zeros((), dtype=torch.float64)):
        assert torch.equal(gaussian_blur(x, sigma, radius=6), x)
    blur = GaussianBlur(LambdaSchedule("sine", k=4), sigma=2.0)
    assert torch.equal(blur.real(x, lam=0.0), x) and torch.equal(blur.real(x, lam=blur.schedule(4)), x)
    assert not torch.equal(blur.real(x, lam=1.0), x)


@pytest.mark.parametrize("sigma,radius,size", [(0.5, 2, 32), (2.0, 6, 32), (5.0, 15, 32), (3.0, 9, 4)])
def test_blur_preserves_every_image_mean(sigma, radius, size):
    x = torch.rand(5, 3, size, size) * 2 - 1
    x[:, :, :, : size // 2] += 1                                 # a strong edge: unequal borders
    y = gaussian_blur(x, sigma, radius)
    torch.testing.assert_close(y.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)), rtol=0, atol=1e-6)
    assert y.var() < x.var()                                      # it did blur


def test_blur_is_a_normalised_gaussian_with_half_sample_symmetric_edges():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for sigma in (0.4, 1.0, 2.0):
        # scipy's "reflect" is the half-sample symmetric extension (d c b a | a b c d)
        ref = ndimage.gaussian_filter(x.double().numpy(), sigma=(0, 0, sigma, sigma), mode="reflect",
                                      radius=(0, 0, 6, 6))
        torch.testing.assert_close(gaussian_blur(x, sigma, 6), torch.from_numpy(ref).float(), rtol=0, atol=1e-5)


def test_blur_tempers_the_real_images_only(mnist):
    tr = trainer(mnist, tempering="blur", blur_sigma=1.5, k=4, steps=8)
    assert tr.tempering.radius == 5
    replay, seen = Replay(tr), []
    record_inputs(tr.D, seen)
    tr.step()
    x = replay.x()
    with torch.no_grad():
        f1, f2 = replay.G(replay.z_()), replay.G(replay.z_())
    sigma = 1.5 * (1 - math.sin(math.pi / 8))
    assert len(seen) == 3
    torch.testing.assert_close(seen[0], gaussian_blur(x, sigma, 5), rtol=0, atol=1e-6)
    assert not torch.allclose(seen[0], x, atol=1e-2)
    torch.testing.assert_close(seen[1], f1, rtol=0, atol=1e-6)     # G(Z) as it is, in D's step ...
    torch.testing.assert_close(seen[2], f2, rtol=0, atol=1e-6)     # ... and in G's


def test_blur_only_for_images():
    with pytest.raises(ValueError, match="needs images"):
        GaussianBlur(LambdaSchedule("sine", k=4)).real(torch.zeros(8, 2), lam=1.0)
    with pytest.raises(ValueError, match="finite number"):
        InstanceNoise(LambdaSchedule("sine", k=4), sigma=float("nan"))


# --- the same start, the same streams ---------------------------------------------------

@pytest.mark.parametrize("loss", ["gan", "wgan-gp"])
def test_every_arm_of_a_seed_starts_alike_and_draws_the_same_streams(mnist, loss):
    base = TrainConfig(**TINY_IMAGES, loss=loss, steps=6, k=4, seed=3)
    arms = {arm: Trainer.create(arm_config(base, arm, 3), mnist, torch.device("cpu"))
            for arm in ("none", "sine", "constant", "noise", "blur", "r1")}
    assert type(arms["noise"].tempering).__name__ == "InstanceNoise" and arms["blur"].tempering.sigma0 == 2.0
    ref = arms.pop("none")
    for name, tr in arms.items():
        for net in ("G", "D"):
            a, b = getattr(ref, net).state_dict(), getattr(tr, net).state_dict()
            assert all(torch.equal(a[k], b[k]) for k in a), (name, net)
    ref.step()
    for name, tr in arms.items():
        tr.step()
        assert tr.sampler.state_dict() == ref.sampler.state_dict(), name
        assert torch.equal(tr.noise.get_state(), ref.noise.get_state()), name
        assert torch.equal(tr.penalty_noise.get_state(), ref.penalty_noise.get_state()), name


# --- after K: nothing -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["noise", "blur"])
def test_they_end_at_k_and_nothing_is_computed_after(ring, mnist, kind, monkeypatch):
    import tempered_gan.method.tempering as tempering_module
    data = ring if kind == "noise" else mnist
    tr = trainer(data, tempering=kind, k=3, steps=6)
    assert tr.cfg.lens_exit == "drop" and tr.exits.exit_step == 3
    calls = []
    for name in ("real", "fake", "update"):
        method = getattr(tr.tempering, name)
        monkeypatch.setattr(tr.tempering, name, lambda *a, _m=method, _n=name, **kw: (calls.append(tr.step_count + 1),
                                                                                      _m(*a, **kw))[1])
    blurred = []
    original_blur = tempering_module.gaussian_blur
    monkeypatch.setattr(tempering_module, "gaussian_blur", lambda *a: (blurred.append(1), original_blur(*a))[1])
    generator = tr.tempering.generators[0] if kind == "noise" else None
    for _ in range(3):
        tr.step()
    assert not tr.tempering.tempers and tr.exited_at == 3
    assert sorted(set(calls)) == [1, 2, 3]
    state = generator.get_state().clone() if generator is not None else None
    n_blurred = len(blurred)
    d_in = []
    record_inputs(tr.D, d_in)
    replay = Replay(tr)
    for _ in range(3):
        tr.step()
    assert max(calls) == 3 and len(blurred) == n_blurred          # no call after K
    if generator is not None:
        assert torch.equal(generator.get_state(), state)          # no noise drawn after K
    assert torch.equal(d_in[0], replay.x())                       # D sees X itself


def test_the_run_logs_the_end_at_k_and_null_lens_losses_after(tmp_path):
    out = tmp_path / "noise"
    assert run("train", "--tempering", "noise", "--steps", 6, "--k", 4, "--out", out, "--dataset", "mixture-ring8",
               "--batch-size", 32, "--width", 16, "--log-every", 2, "--no-progress") == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 4, "lens_exited": True} in lines
    logged = {r["step"]: r for r in lines if "loss_d" in r}
    assert all(r.get("loss_lens_adv") is None for r in logged.values())      # nothing adversarial to train
    assert logged[2]["loss_lens_rec"] > 0 and logged[6]["loss_lens_rec"] is None   # ‖X − T(X)‖² until K only
    assert logged[2]["lambda"] == pytest.approx(1 - 2 ** -0.5) and logged[6]["lambda"] is None
    config = json.loads((out / "config.json").read_text())
    assert (config["tempering"], config["noise_sigma"], config["blur_sigma"], config["lens_exit"]) == \
        ("noise", 1.0, None, "drop")
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["lens"] is None and state["opt_lens"] is None


# --- exact resume ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["noise", "blur"])
def test_resume_before_k_is_bit_identical(tmp_path, mnist_dir, kind):
    data = ["--dataset", "mnist", "--data-dir", mnist_dir] if kind == "blur" else \
        ["--dataset", "mixture-ring8", "--batch-size", 32, "--width", 16, "--log-every", 2, "--no-progress"]
    args = ["--tempering", kind, "--k", 6, "--checkpoint-every", 2, "--sample-every", 8, *(TINY if kind == "blur" else []), *data]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run("train", "--steps", 8, "--out", straight, *args) == 0
    assert run("train", "--steps", 2, "--out", split, *args) == 0
    middle = torch.load(split / "checkpoint.pt", weights_only=True)
    assert len(middle["rng"][0]["tempering"]) == (1 if kind == "noise" else 0)   # the instance-noise stream
    assert run("train", "--resume", split, "--steps", 8) == 0
    a, b = (torch.load(p / "checkpoint.pt", weights_only=True) for p in (straight, split))
    assert a["step"] == b["step"] == 8 and a["lens_exited_at"] == b["lens_exited_at"] == 6
    for net in ("G", "D"):
        assert all(torch.equal(v, b[net][k]) for k, v in a[net].items()), net


def test_a_checkpoint_without_the_noise_stream_does_not_fit_a_noise_run(ring):
    tr = trainer(ring, tempering="noise", k=4, steps=8)
    tr.step()
    state = tr.state_dict()
    fresh = trainer(ring, tempering="noise", k=4, steps=8)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.tempering.generator.get_state(), tr.tempering.generator.get_state())
    del state["rng"][0]["tempering"]
    from tempered_gan.errors import UserError
    with pytest.raises(UserError, match="tempering generator"):
        trainer(ring, tempering="noise", k=4, steps=8).load_state_dict(state)


def test_saved_configurations_without_the_tempering_keys_load_as_the_lens():
    values = json.loads(resolve(TrainConfig(dataset="mixture-ring8")).to_json())
    for key in ("tempering", "noise_sigma", "blur_sigma"):
        del values[key]
    cfg = TrainConfig.from_dict(values)
    assert (cfg.tempering, cfg.noise_sigma, cfg.blur_sigma) == ("lens", None, None)
    assert resolve(cfg) == cfg


# --- sample grids -----------------------------------------------------------------------

def test_sample_grids_show_what_d_saw_and_change_nothing(ring, mnist):
    blur = trainer(mnist, tempering="blur", k=4, steps=8)
    blur.step()
    fake, shown, x = samples(blur, 16)
    torch.testing.assert_close(shown, gaussian_blur(x, 2.0 * (1 - math.sin(math.pi / 8)), 6), rtol=0, atol=0)
    noise = trainer(ring, tempering="noise", k=4, steps=8)
    noise.step()
    before = noise.tempering.generator.get_state().clone()
    fake, shown, x = samples(noise, 256)
    sigma = 1 - math.sin(math.pi / 8)
    assert (shown - x).std().item() == pytest.approx(sigma, rel=0.1)
    assert torch.equal(samples(noise, 256)[1], shown)                  # fixed noise: the same grid every time
    assert torch.equal(noise.tempering.generator.get_state(), before)   # the run's own stream untouched


# --- bad options ----------------------------------------------------------------------

BAD = [
    (["--tempering", "fog"], "unknown tempering 'fog'"),
    (["--tempering", "blur"], "blurs images; mixture-ring8 is 2-D points"),
    (["--tempering", "noise", "--noise-sigma", "-1"], "--noise-sigma must be a finite number ≥ 0, got -1.0"),
    (["--tempering", "noise", "--noise-sigma", "nan"], "--noise-sigma must be a finite number ≥ 0, got nan"),
    (["--tempering", "blur", "--dataset", "mnist", "--blur-sigma", "inf"], "--blur-sigma must be a finite number"),
    (["--tempering", "blur", "--dataset", "mnist", "--blur-sigma", "-0.5"], "--blur-sigma must be a finite number"),
    (["--tempering", "noise", "--lens-exit", "blend"], "contradicts --lens-exit blend"),
    (["--tempering", "noise", "--lens-zero-init"], "contradicts --lens-zero-init"),
    (["--noise-sigma", "0.5"], "--noise-sigma is σ₀ of --tempering noise; this run uses --tempering lens"),
    (["--tempering", "noise", "--blur-sigma", "1"], "--blur-sigma is σ₀ of --tempering blur"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_tempering_options_are_one_clear_line(capsys, argv, message):
    assert run("train", "--dry-run", *argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("tempered-gan: error:"), err


DEPRECATED = [
    (["--tempering", "noise", "--lens", "none"], "contradicts --tempering noise"),
    (["--tempering", "noise", "--keep-lens"], "contradicts --lens-exit keep"),
    (["--lens", "sine", "--schedule", "constant"], "contradicts --schedule constant"),
    (["--keep-lens", "--lens-exit", "drop"], "contradicts --lens-exit drop"),
]


@pytest.mark.parametrize("argv,message", DEPRECATED, ids=[" ".join(a) for a, _ in DEPRECATED])
def test_a_deprecated_flag_warns_once_and_a_contradiction_is_one_error_line(capsys, argv, message):
    assert run("train", "--dry-run", *argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "deprecated" in lines[0] and lines[1].startswith("tempered-gan: error:"), lines
    assert message in lines[1]


@pytest.mark.parametrize("old,new", [(["--lens", "none"], {"tempering": "none"}),
                                     (["--lens", "constant"], {"schedule": "constant", "tempering": "lens"}),
                                     (["--keep-lens"], {"lens_exit": "keep"})])
def test_a_deprecated_flag_still_works_for_one_release(capsys, old, new):
    assert run("train", "--dry-run", *old) == 0
    captured = capsys.readouterr()
    config = json.loads(captured.out)
    assert {k: config[k] for k in new} == new and "lens" not in config and "keep_lens" not in config
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 1 and "deprecated" in warnings[0] and "--" in warnings[0]


def test_good_tempering_options_resolve(capsys):
    assert run("train", "--dry-run", "--tempering", "noise", "--lens-exit", "drop", "--noise-sigma", "0") == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["noise_sigma"], config["lens_exit"]) == (0.0, "drop")
    assert run("train", "--dry-run", "--tempering", "blur", "--dataset", "mnist", "--schedule", "constant") == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["blur_sigma"], config["noise_sigma"], config["schedule"]) == (2.0, None, "constant")


def test_the_instance_noise_stream_is_its_own(ring):
    tr = trainer(ring, tempering="noise", seed=5)
    expected = torch.Generator().manual_seed(seed_for(5, "instance-noise"))
    assert torch.equal(tr.tempering.generator.get_state(), expected.get_state())
