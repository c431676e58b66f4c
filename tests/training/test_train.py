"""The trainer: what each update may change, identical starts, exact resume."""
import dataclasses

import pytest
import torch
from helpers import TINY_IMAGES, TINY_POINTS

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.method.losses import OBJECTIVES
from tempered_gan.training.factories import build_nets
from tempered_gan.training.randomness import EpochSampler
from tempered_gan.training.scalars import stacked
from tempered_gan.training.trainer import Trainer

POINTS = dict(TINY_POINTS, steps=10)
IMAGES = {k: v for k, v in dict(TINY_IMAGES, steps=10).items() if k != "dataset"}


def make_trainer(data, **options):
    return Trainer.create(resolve(TrainConfig(**options)), data, torch.device("cpu"))


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(before, module):
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


@pytest.mark.parametrize("loss", ["gan", "lsgan", "wgan-gp"])
def test_lens_step_changes_only_the_lens(mnist_dir, loss):
    data = load_dataset("mnist", str(mnist_dir))
    trainer = make_trainer(data, dataset="mnist", loss=loss, **IMAGES)
    tempering = trainer.tempering
    x = data.batch(torch.arange(8))
    tempering.real(x)
    G, D, L = snapshot(trainer.G), snapshot(trainer.D), snapshot(trainer.lens)
    out = tempering.step(trainer.D, t=1)
    assert not changed(G, trainer.G)
    assert not changed(D, trainer.D)                     # parameters *and* batch-norm statistics
    assert any(k.endswith("weight") for k in changed(L, trainer.lens))
    assert all(p.grad is None for p in trainer.D.parameters())
    assert out["lambda"] == pytest.approx(1 - torch.sin(torch.tensor(torch.pi / (2 * 10_000))).item())


@pytest.mark.parametrize("loss", ["gan", "wgan-gp"])
def test_d_and_g_steps_never_touch_the_lens(mnist_dir, loss, monkeypatch):
    data = load_dataset("mnist", str(mnist_dir))
    trainer = make_trainer(data, dataset="mnist", loss=loss, **IMAGES)
    G, D = snapshot(trainer.G), snapshot(trainer.D)
    lens_params = {k: p.clone() for k, p in trainer.lens.named_parameters()}
    at_lens_step = {}

    def lens_step(discriminator, lam, adversarial=True):   # stands in for the lens update: records L as D and G left it
        at_lens_step.update({k: p.clone() for k, p in trainer.lens.named_parameters()})
        assert all(p.grad is None for p in trainer.lens.parameters())
        return {"loss_lens_adv": torch.tensor(0.0), "loss_lens_rec": torch.tensor(0.0)}

    monkeypatch.setattr(trainer.tempering, "update", lens_step)
    trainer.step()
    assert changed(G, trainer.G) and changed(D, trainer.D)
    assert at_lens_step.keys() == lens_params.keys()
    assert all(torch.equal(lens_params[k], v) for k, v in at_lens_step.items())


def test_identical_start_with_and_without_lens(ring):
    with_lens = make_trainer(ring, schedule="sine", **POINTS)
    without = make_trainer(ring, tempering="none", **POINTS)
    assert not without.tempering.tempers and without.lens is None
    for a, b in ((with_lens.G, without.G), (with_lens.D, without.D)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # Same data order and noise: the streams stand in the same place after a step.
    with_lens.step()
    without.step()
    assert with_lens.sampler.state_dict() == without.sampler.state_dict()
    assert torch.equal(with_lens.noise.get_state(), without.noise.get_state())
    assert torch.equal(with_lens.sampler.next(), without.sampler.next())
    # ...and a different seed gives different weights.
    other = make_trainer(ring, tempering="none", **{**POINTS, "seed": 1})
    assert not torch.equal(next(other.G.parameters()), next(without.G.parameters()))


def test_building_the_lens_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    build_nets(resolve(TrainConfig(**POINTS)), (2,))
    assert torch.equal(before, torch.get_rng_state())


def test_one_lens_forward_per_iteration(mnist_dir):
    """L(X) computed for D's step is reused by the lens step (no second forward)."""
    data = load_dataset("mnist", str(mnist_dir))
    for loss, expected in (("gan", 1), ("wgan-gp", 5)):   # WGAN-GP: once per critic batch
        trainer = make_trainer(data, dataset="mnist", loss=loss, **IMAGES)
        calls = []
        trainer.lens.register_forward_hook(lambda *_, calls=calls: calls.append(1))
        trainer.step()
        assert len(calls) == expected


def test_critic_steps_draw_a_batch_each(ring):
    trainer = make_trainer(ring, loss="wgan-gp", **POINTS)
    trainer.step()
    assert trainer.sampler.position == 5 * 32


def test_epoch_sampler_covers_each_epoch_and_resumes():
    s = EpochSampler(10, 3, seed=0)
    first = torch.cat([s.next() for _ in range(3)])
    assert len(set(first.tolist())) == 9                  # one epoch, last partial batch dropped
    state = s.state_dict()
    rest = [s.next() for _ in range(4)]
    t = EpochSampler(10, 3, seed=0)
    t.load_state_dict(state)
    assert all(torch.equal(a, t.next()) for a in rest)


def test_objectives_are_registered_for_every_loss_option():
    assert set(OBJECTIVES) == {"gan", "lsgan", "wgan-gp"}
    cfg = resolve(TrainConfig(dataset="cifar10", loss="wgan-gp"))
    assert (cfg.arch, cfg.width, cfg.z_dim, cfg.critic_steps, cfg.gp_weight, cfg.beta2) == ("wgan-gp", 128, 128, 5, 10.0, 0.9)
    cfg = resolve(TrainConfig(dataset="mnist", loss="lsgan"))
    assert (cfg.arch, cfg.k, cfg.lr, cfg.batch_size) == ("lsgan", 10_000, 1e-4, 64)
    assert dataclasses.asdict(resolve(cfg)) == dataclasses.asdict(cfg)   # resolving twice changes nothing


@pytest.mark.parametrize("options", [dict(amp="bf16"), dict(channels_last=True), dict(amp="bf16", loss="wgan-gp")])
def test_speed_options_train_with_finite_losses(mnist_dir, options):
    data = load_dataset("mnist", str(mnist_dir))
    trainer = make_trainer(data, dataset="mnist", **{**IMAGES, **options})
    plain = make_trainer(data, dataset="mnist", **IMAGES)
    losses, reference = stacked(trainer.step()), stacked(plain.step())
    assert torch.isfinite(losses).all()
    if options.get("amp") == "bf16":
        assert not torch.equal(losses, reference)          # bfloat16 really was used ...
    assert torch.allclose(losses, reference, rtol=0.1, atol=0.05) or options.get("loss")   # ... and changed little
    if options.get("channels_last"):
        assert next(trainer.D.parameters()).is_contiguous(memory_format=torch.channels_last)
