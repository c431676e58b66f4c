"""The field's stabilisers beside the lens: spectral normalisation of D, DiffAugment of both of D's
inputs, StyleGAN3's blur of both inputs with a linear fade, and arms that combine them with a tempering."""
import dataclasses

import pytest
import torch
from helpers import TINY_IMAGES, write_mnist
from torch import nn

from tempered_gan import GaussianBlur, LambdaSchedule, gaussian_blur
from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.errors import UserError
from tempered_gan.method.augment import DiffAugment, parse_policy
from tempered_gan.studies.arms import arm_config, parse_arm
from tempered_gan.training.checkpoint import load_checkpoint
from tempered_gan.training.loop import train
from tempered_gan.training.trainer import Trainer


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    return load_dataset("mnist", str(write_mnist(tmp_path_factory.mktemp("mnist"), n=40)))


def trainer(data, **options) -> Trainer:
    return Trainer.create(resolve(TrainConfig(**{**TINY_IMAGES, **options})), data, torch.device("cpu"))


def weights(net: nn.Module) -> dict:
    return {k: v.clone() for k, v in net.state_dict().items()}


# --- spectral normalisation -------------------------------------------------------------------

def largest_singular_values(net: nn.Module) -> list[float]:
    """σ_max of the weight each conv and linear layer of ``net`` uses (the normalised one, when normalised)."""
    return [float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2))
            for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]


def test_spectral_norm_bounds_every_layer_of_d_and_leaves_g_alone(mnist):
    tr = trainer(mnist, spectral_norm=True)
    plain = trainer(mnist)
    for _ in range(6):                     # power iterations: one per forward pass of D in training mode
        tr.step()
    sigmas = largest_singular_values(tr.D)
    assert len(sigmas) >= 3 and all(s == pytest.approx(1.0, abs=0.1) for s in sigmas), sigmas
    assert not all(s == pytest.approx(1.0, abs=0.1) for s in largest_singular_values(plain.D))   # not so without it
    assert not any(hasattr(m, "parametrizations") for m in tr.G.modules())
    assert all(hasattr(m, "parametrizations") for m in tr.D.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    fresh, plain_fresh = trainer(mnist, spectral_norm=True), trainer(mnist)       # same G, same D init
    assert all(torch.equal(a, b) for a, b in zip(fresh.G.state_dict().values(), plain_fresh.G.state_dict().values()))
    assert torch.equal(fresh.D.state_dict()["body.0.parametrizations.weight.original"],
                       plain_fresh.D.state_dict()["body.0.weight"])


def test_spectral_norm_resumes_bit_for_bit(mnist, tmp_path):
    cfg = resolve(TrainConfig(**{**TINY_IMAGES, "spectral_norm": True, "steps": 4, "checkpoint_every": 2,
                                 "log_every": 2, "sample_every": 100, "k": 2}))
    straight, split = tmp_path / "straight", tmp_path / "split"
    for folder in (straight, split):
        folder.mkdir()
    train(cfg, mnist, straight, progress=False)
    train(dataclasses.replace(cfg, steps=2), mnist, split, progress=False)
    train(cfg, mnist, split, resume=True, progress=False)
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert any("parametrizations" in k and k.endswith("_u") for k in a["D"])    # the power iteration's state is saved
    assert all(torch.equal(a["D"][k], b["D"][k]) for k in a["D"]) and all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])


# --- DiffAugment --------------------------------------------------------------------------------

def test_each_operation_is_differentiable_and_draws_only_from_its_generator():
    x = torch.randn(6, 3, 32, 32, requires_grad=True)
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        state = torch.get_rng_state()
        y = DiffAugment(parse_policy(policy), torch.Generator().manual_seed(0))(x)
        assert torch.equal(torch.get_rng_state(), state)                  # the global stream is untouched
        assert y.shape == x.shape and not torch.equal(y, x), policy
        (grad,) = torch.autograd.grad(y.square().sum(), x)
        assert grad.abs().sum() > 0, policy
    again = DiffAugment(("translation",), torch.Generator().manual_seed(0))(x)
    assert torch.equal(again, DiffAugment(("translation",), torch.Generator().manual_seed(0))(x))


def test_translation_moves_whole_pixels_and_cutout_zeroes_half_the_side():
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(64, 1, 1, 1) + 1          # no pixel is 0 before
    moved = DiffAugment(("translation",), torch.Generator().manual_seed(1))(x)
    for image in moved:
        kept = image[image > 0]
        assert set(kept.tolist()) <= set(x[0].flatten().tolist())            # values move, they are not mixed
        assert (image == 0).sum() <= 8 + 8 - 1                               # a shift of at most 1 px (8 / 8) each way
    cut = DiffAugment(("cutout",), torch.Generator().manual_seed(2))(x)
    assert ((cut == 0).flatten(1).sum(1) <= 16).all() and ((cut == 0).flatten(1).sum(1) > 0).all()


def test_diffaugment_shows_d_both_inputs_augmented_in_both_steps_and_gradients_reach_g(mnist):
    tr = trainer(mnist, diffaugment="translation,cutout", tempering="none")
    seen, original = [], tr.augment.__call__

    class Spy(DiffAugment):
        def __call__(self, x):
            seen.append(x.requires_grad)
            return original(x)

    spy = Spy(tr.augment.policy, tr.augment.generator)
    tr.augment = spy
    before = weights(tr.G)
    tr.step()
    # D's step: the real batch (no gradient) and the generated one (made without gradient); G's step: G(Z), with.
    assert seen == [False, False, True], seen
    assert any(not torch.equal(before[k], v) for k, v in tr.G.state_dict().items())   # G learned through it


def test_diffaugment_off_is_the_run_without_it_and_on_it_changes_no_other_stream(mnist):
    off, plain = trainer(mnist, diffaugment=""), trainer(mnist)
    on = trainer(mnist, diffaugment="color")
    assert off.augment is None
    for _ in range(2):
        off.step(), plain.step(), on.step()
    assert all(torch.equal(a, b) for a, b in zip(off.G.state_dict().values(), plain.G.state_dict().values()))
    assert torch.equal(on.noise.get_state(), plain.noise.get_state())        # G's noise: the same draws
    assert torch.equal(on.penalty_noise.get_state(), plain.penalty_noise.get_state())
    assert not torch.equal(next(on.D.parameters()), next(plain.D.parameters()))


def test_the_lens_tempers_x_before_the_augmentation(mnist):
    tr = trainer(mnist, diffaugment="color", k=5)
    assert tr.critic.augment is tr.augment and tr.critic.discriminator is tr.D   # the lens asks D through it
    with pytest.raises(UserError, match="unknown DiffAugment policy flip"):
        resolve(TrainConfig(dataset="mnist", diffaugment="flip"))
    with pytest.raises(UserError, match="2-D points"):
        resolve(TrainConfig(diffaugment="color"))


# --- StyleGAN3's blur of both inputs ----------------------------------------------------------------

def test_the_blur_of_both_inputs_blurs_g_of_z_too_and_fades_linearly_to_zero_at_k():
    schedule = LambdaSchedule("linear", 100)
    assert (schedule(0), schedule(50), schedule(100), schedule(101)) == (1.0, 0.5, 0.0, 0.0)
    assert schedule.end == 100
    x = torch.randn(4, 1, 32, 32, requires_grad=True)
    both, real_only = GaussianBlur(schedule, 2.0, both=True), GaussianBlur(schedule, 2.0)
    lam = schedule(25)
    assert torch.allclose(both.fake(x, lam), gaussian_blur(x, 2.0 * lam, 6))
    assert torch.equal(real_only.fake(x, lam), x)
    assert torch.equal(both.real(x, lam=lam), real_only.real(x, lam=lam))
    (grad,) = torch.autograd.grad(both.fake(x, lam).sum(), x)
    assert grad.abs().sum() > 0                                              # G is trained through the blur
    assert torch.allclose(both.fake(x, schedule(100)), x)                    # σ = 0 at K


def test_the_blur_both_arm_ends_at_k_and_its_flag_needs_the_blur(mnist):
    tr = Trainer.create(arm_config(resolve(TrainConfig(**TINY_IMAGES, k=3)), "blur-both", 0), mnist,
                        torch.device("cpu"))
    assert tr.tempering.both and tr.cfg.schedule == "linear"
    for _ in range(4):
        tr.step()
    assert tr.exited_at == 3
    with pytest.raises(UserError, match="--blur-both"):
        resolve(TrainConfig(dataset="mnist", blur_both=True))


# --- combined arms --------------------------------------------------------------------------------

@pytest.mark.parametrize("added, option", [("r1", {"r1_gamma": 10.0}), ("sn", {"spectral_norm": True}),
                                           ("diffaug", {"diffaugment": "color,translation,cutout"})])
def test_a_combined_arm_is_its_tempering_with_the_added_arms_options_and_nothing_else(added, option):
    base = TrainConfig(dataset="mnist")
    both = arm_config(base, f"sine:k=7+{added}", 0)
    assert both == dataclasses.replace(arm_config(base, "sine:k=7", 0), **option)
    alone = arm_config(base, added, 0)
    assert all(getattr(both, k) == getattr(alone, k) for k in option)
    assert parse_arm(f"sine+{added}").label.startswith("sine lens + ")


def test_a_baseline_flag_goes_to_its_own_arms_only():
    base = TrainConfig(dataset="mnist", r1_gamma=3.0, diffaugment="color")
    assert arm_config(base, "sine+r1", 0).r1_gamma == 3.0 and arm_config(base, "sine", 0).r1_gamma == 0.0
    assert arm_config(base, "diffaug", 0).diffaugment == "color" and arm_config(base, "none", 0).diffaugment == ""


def test_draws_stay_in_range_for_bfloat16_images():
    x = torch.zeros(4096, 1, 32, 32, dtype=torch.bfloat16)
    augment = DiffAugment(("translation",), torch.Generator().manual_seed(0))
    shifts = augment._integers(5, -4, (4096, 1, 1), x)
    assert shifts.min() >= -4 and shifts.max() <= 4 and set(shifts.unique().tolist()) == set(range(-4, 5))


def test_arm_spellings_that_used_to_break():
    assert parse_arm("constant:r1_gamma=10").name == "constant:r1_gamma=10"
    assert parse_arm("r1:r1_gamma=1e6").name == "r1:r1_gamma=1e6"
    assert arm_config(TrainConfig(dataset="mnist"), "r1:r1_gamma=1e6", 0).r1_gamma == 1e6
    assert parse_arm("sn+r1").name == parse_arm("r1+sn").name == "r1+sn"
    policy = arm_config(TrainConfig(dataset="mnist"), "diffaug:diffaugment=color/cutout", 0).diffaugment
    assert policy == "color,cutout"
