"""The method itself (paper §2.1–2.4), checked from outside the trainer.

Each test runs real ``Trainer.step()`` iterations on tiny nets and records, with
forward hooks, what G, D and the lens receive and return. From those records it
recomputes, with the paper's formulas written out below (not imported from the
package), the gradient each network must have received in its update and the
weights it must end with, and compares them with what the trainer did. So the
tests say *what* one TAN iteration does, not how ``Trainer.step`` is written:

* D's update is fed L(X) (never X) and G(Z); its loss is the variant's D loss,
  plus 10 × the gradient penalty at interpolates between L(X) and G(Z) for
  WGAN-GP; D's optimiser steps once, with D's gradient only.
* G's update goes through D as D's update left it (frozen: no gradient into D,
  batch-norm statistics restored) and uses the variant's G loss.
* The lens's gradient is that of λ(t)·L_A(D(L(X))) + mean((X − L(X))²) with
  t counted from 1, on the batch D saw, through the updated D; the lens steps once.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_IMAGES, TINY_POINTS
from torch.testing import assert_close

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.training.trainer import Trainer

GP_WEIGHT = 10.0   # WGAN-GP's penalty weight (Gulrajani et al.'s, whose code paper §2.4 uses)


# --- the paper's terms (§2.1–2.3); D's outputs are logits for the original GAN ----------

def d_loss(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if loss == "gan":      # −log D(L(X)) − log(1 − D(G(Z)))
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if loss == "lsgan":    # ‖D(G(Z))‖² + ‖D(L(X)) − 1‖²
        return fake.pow(2).mean() + (real - 1).pow(2).mean()
    return fake.mean() - real.mean()                      # WGAN: D(G(Z)) − D(L(X)) (+ penalty)


def g_loss(loss: str, fake: torch.Tensor) -> torch.Tensor:
    if loss == "gan":      # −log D(G(Z))
        return F.softplus(-fake).mean()
    if loss == "lsgan":    # ‖D(G(Z)) − 1‖²
        return (fake - 1).pow(2).mean()
    return -fake.mean()                                   # −D(G(Z))


def lens_adversarial(loss: str, real: torch.Tensor) -> torch.Tensor:
    if loss == "gan":      # −log(1 − D(L(X)))
        return F.softplus(real).mean()
    if loss == "lsgan":    # ‖D(L(X))‖²
        return real.pow(2).mean()
    return real.mean()                                    # D(L(X))


def lam(cfg: TrainConfig, t: int) -> float:
    if cfg.schedule == "constant":
        return cfg.lambda_value
    return 1 - math.sin(t * math.pi / (2 * cfg.k)) if t <= cfg.k else 0.0


def penalty(critic, points: torch.Tensor) -> torch.Tensor:
    """E[(‖∇D(x̂)‖₂ − 1)²] at the given interpolates x̂."""
    points = points.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


# --- watching a trainer from outside -------------------------------------------------

@dataclass(eq=False)
class Call:
    net: str                  # "G", "D" or "lens"
    input: torch.Tensor
    output: torch.Tensor
    d_trainable: bool         # D's parameters took gradients at the time (D's own update)
    grad_enabled: bool


class Recorder:
    """Forward hooks on G, D and the lens: every call's input, output and the state of D."""

    def __init__(self, trainer: Trainer):
        self.trainer, self.calls, self.handles = trainer, [], []

    def __enter__(self):
        nets = {"G": self.trainer.G, "D": self.trainer.D, "lens": self.trainer.lens}
        for name, net in nets.items():
            if net is not None:
                self.handles.append(net.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name):
        def hook(module, args, output):
            self.calls.append(Call(name, args[0].detach().clone(), output.detach().clone(),
                                   any(p.requires_grad for p in self.trainer.D.parameters()),
                                   torch.is_grad_enabled()))
        return hook

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()

    def of(self, net: str, **where) -> list[Call]:
        return [c for c in self.calls if c.net == net and all(getattr(c, k) == v for k, v in where.items())]


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


def among(x: torch.Tensor, tensors: list[torch.Tensor]) -> bool:
    return any(same(x, t) for t in tensors)


def on_segments(points: torch.Tensor, ends_a: torch.Tensor, ends_b: torch.Tensor) -> bool:
    """Is each points[i] = α_i·ends_a[i] + (1 − α_i)·ends_b[i] with one α_i in [0, 1]?"""
    p, a, b = points.flatten(1).double(), ends_a.flatten(1).double(), ends_b.flatten(1).double()
    alpha = ((p - b) * (a - b)).sum(1) / (a - b).pow(2).sum(1)
    rebuilt = alpha[:, None] * a + (1 - alpha[:, None]) * b
    return bool((alpha >= -1e-6).all() and (alpha <= 1 + 1e-6).all()
                and torch.allclose(rebuilt, p, rtol=0, atol=1e-5))


def assert_grads(expected: torch.nn.Module, actual: torch.nn.Module, what: str) -> None:
    for (name, e), (_, a) in zip(expected.named_parameters(), actual.named_parameters()):
        assert a.grad is not None, f"{what}: {name} took no gradient"
        assert e.grad is not None, f"{what}: {name} has no gradient in the paper's loss"
        assert_close(a.grad, e.grad, rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{what}, {name}: {m}")


def assert_one_update(reference: torch.nn.Module, optimizer, actual: torch.nn.Module, what: str) -> None:
    """``actual`` is ``reference`` after one step of ``optimizer`` (its own Adam) on ``actual``'s gradients."""
    for r, a in zip(reference.parameters(), actual.parameters()):
        r.grad = a.grad.clone()
    optimizer.step()
    for (name, r), (_, a) in zip(reference.named_parameters(), actual.named_parameters()):
        assert_close(a.detach(), r.detach(), rtol=1e-5, atol=1e-7, msg=lambda m, name=name: f"{what} weights, {name}: {m}")


def make_trainer(data, **options) -> Trainer:
    return Trainer.create(resolve(TrainConfig(**options)), data, torch.device("cpu"))


def adam(cfg: TrainConfig, module: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(cfg.beta1, cfg.beta2))


def check_iterations(trainer: Trainer, steps: int) -> list[float]:
    """Run ``steps`` iterations (one critic step each) and check every update against the paper.

    Returns the λ(t) used at each step."""
    cfg = trainer.cfg
    assert cfg.critic_steps == 1 and cfg.optimizer == "adam"
    nets = {"G": trainer.G, "D": trainer.D, "lens": trainer.lens}
    ref = {name: copy.deepcopy(net) for name, net in nets.items()}
    opt = {"G": adam(cfg, ref["G"], cfg.lr), "D": adam(cfg, ref["D"], cfg.lr), "lens": adam(cfg, ref["lens"], cfg.lens_lr)}
    used = []
    for _ in range(steps):
        for name, net in nets.items():          # the references start this step where the trainer does
            ref[name].load_state_dict(net.state_dict())
            ref[name].zero_grad(set_to_none=True)
        with Recorder(trainer) as rec:
            trainer.step()
        t = trainer.step_count
        G, D, L = ref["G"], ref["D"], ref["lens"]

        lens_calls = rec.of("lens")
        kept = rec.of("lens", grad_enabled=True)
        assert kept, "the lens never ran with gradients: it cannot have been trained"
        x, lx = kept[-1].input, kept[-1].output
        assert not torch.allclose(x, lx), "the lens is the identity here: the test could not tell X from L(X)"
        fakes = [c.output for c in rec.of("G", grad_enabled=False)]

        # 1. D's update: {L(X), G(Z)} (+ interpolates between them for WGAN-GP), replayed on D as it was.
        d_calls = rec.of("D", d_trainable=True)
        reals = [c for c in d_calls if among(c.input, [c2.output for c2 in lens_calls])]
        fake_calls = [c for c in d_calls if among(c.input, fakes)]
        mixed = [c for c in d_calls if c not in reals and c not in fake_calls]
        assert reals, "D's update never saw L(X)"
        assert not any(among(c.input, [c2.input for c2 in lens_calls]) for c in d_calls), "D's update saw X itself"
        assert fake_calls, "D's update never saw G(Z)"
        outputs, loss_d = {}, 0.0
        for c in d_calls:                        # in the trainer's order, so batch-norm statistics match too
            if c in mixed:
                assert cfg.loss == "wgan-gp", f"D's update saw an input that is neither L(X) nor G(Z) ({cfg.loss})"
                assert on_segments(c.input, reals[-1].input, fake_calls[-1].input), \
                    "the gradient penalty's points are not interpolates between L(X) and G(Z)"
                loss_d = loss_d + GP_WEIGHT * penalty(D, c.input)
            else:
                outputs["real" if c in reals else "fake"] = D(c.input)
        if cfg.loss == "wgan-gp":
            assert mixed, "WGAN-GP's update took no gradient penalty"
        (loss_d + d_loss(cfg.loss, outputs["real"], outputs["fake"])).backward()
        assert_grads(D, trainer.D, "D")
        assert_one_update(D, opt["D"], trainer.D, "D")
        for (name, b), (_, a) in zip(D.named_buffers(), trainer.D.named_buffers()):
            assert torch.equal(a, b), f"D's buffer {name} changed after D's update (G or lens step not frozen?)"
        D.requires_grad_(False)

        # 2. G's update through the updated D.
        g_calls = rec.of("G", grad_enabled=True)
        assert g_calls, "G's update never ran G with gradients"
        z, fake = g_calls[-1].input, g_calls[-1].output
        assert any(same(c.input, fake) for c in rec.of("D", d_trainable=False)), "G's loss is not of D(G(Z))"
        regenerated = G(z)
        assert_close(regenerated.detach(), fake)
        g_loss(cfg.loss, D(regenerated)).backward()
        assert_grads(G, trainer.G, "G")
        assert_one_update(G, opt["G"], trainer.G, "G")

        # 3. The lens's update: λ(t)·L_A(D(L(X))) + mean((X − L(X))²), through the updated D.
        through_d = any(same(c.input, lx) for c in rec.of("D", d_trainable=False))
        if cfg.schedule != "sine" or t <= cfg.k:
            assert through_d, "the lens's loss is not of D(L(X))"
        else:   # λ = 0 for good: the term weighs nothing, so D's pass is skipped
            assert not through_d, "after K the lens step still ran D for a term weighted by λ = 0"
        lensed = L(x)
        assert_close(lensed.detach(), lx)
        loss_lens = (x - lensed).pow(2).mean()
        if through_d:
            loss_lens = lam(cfg, t) * lens_adversarial(cfg.loss, D(lensed)) + loss_lens
        loss_lens.backward()
        assert_grads(L, trainer.lens, "lens")
        assert_one_update(L, opt["lens"], trainer.lens, "lens")
        D.requires_grad_(True)
        used.append(lam(cfg, t))
    return used


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    from helpers import write_mnist
    return load_dataset("mnist", str(write_mnist(tmp_path_factory.mktemp("mnist"), n=40)))


def test_original_gan_with_the_sine_schedule(mnist):
    """DCGAN nets (batch norm in G, D and the lens); K = 2, so λ(1) = 1 − sin(π/4) ≈ 0.29, λ(2) = λ(3) = 0."""
    trainer = make_trainer(mnist, loss="gan", schedule="sine", k=2, lens_exit="keep", steps=10, **TINY_IMAGES)
    assert check_iterations(trainer, 3) == pytest.approx([1 - math.sqrt(0.5), 0.0, 0.0])


def test_lsgan_with_a_constant_lambda(mnist):
    trainer = make_trainer(mnist, loss="lsgan", schedule="constant", lambda_value=0.3, steps=10, **TINY_IMAGES)
    assert check_iterations(trainer, 2) == [0.3, 0.3]


def test_wgan_gp_on_images(mnist):
    """Gulrajani's nets, one critic step per iteration so that every update can be replayed."""
    trainer = make_trainer(mnist, loss="wgan-gp", schedule="sine", k=4, steps=10, critic_steps=1, **TINY_IMAGES)
    assert trainer.cfg.gp_weight == GP_WEIGHT
    check_iterations(trainer, 3)


def test_wgan_gp_on_points_with_the_paper_settings(ring):
    trainer = make_trainer(ring, loss="wgan-gp", schedule="constant", lambda_value=0.3, steps=10, critic_steps=1,
                           **TINY_POINTS)
    check_iterations(trainer, 2)


def test_five_critic_steps_see_five_lensed_batches_and_the_lens_steps_once(ring):
    """WGAN-GP's default: 5 D updates, each on L(X) of its own batch, then one G and one lens update."""
    trainer = make_trainer(ring, loss="wgan-gp", schedule="constant", lambda_value=0.3, steps=10, **TINY_POINTS)
    cfg = trainer.cfg
    assert cfg.critic_steps == 5
    lens_before = copy.deepcopy(trainer.lens)
    opt = adam(cfg, lens_before, cfg.lens_lr)
    with Recorder(trainer) as rec:
        trainer.step()
    lens_calls = rec.of("lens")
    d_inputs = [c.input for c in rec.of("D", d_trainable=True)]
    reals = [x for x in d_inputs if among(x, [c.output for c in lens_calls])]
    assert len(reals) == 5 and len({r.sum().item() for r in reals}) == 5      # five different lensed batches
    assert not any(among(x, [c.input for c in lens_calls]) for x in d_inputs)
    # The lens's one update, through D as the critic steps left it, on the last batch.
    x = rec.of("lens", grad_enabled=True)[-1].input
    assert same(x, lens_calls[-1].input)
    D = copy.deepcopy(trainer.D).requires_grad_(False)
    lensed = lens_before(x)
    (0.3 * lens_adversarial("wgan-gp", D(lensed)) + (x - lensed).pow(2).mean()).backward()
    assert_grads(lens_before, trainer.lens, "lens")
    assert_one_update(lens_before, opt, trainer.lens, "lens")


# --- R1, the stabiliser baseline (Mescheder et al. 2018) --------------------------------

def r1(critic, real: torch.Tensor) -> torch.Tensor:
    """E‖∇ₓD(x)‖² at the real data x."""
    real = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


@pytest.mark.parametrize("gamma", [1.0, 10.0])
def test_the_r1_arm_penalises_d_at_the_real_data_by_gamma_over_two(ring, gamma):
    """The r1 arm: no tempering, D's update takes X and G(Z), and its loss is the GAN's plus
    γ/2·E‖∇D(X)‖², taken at X (not at G(Z)) and scaled by γ; replayed on a copy of D."""
    from tempered_gan.studies.arms import arm_config

    cfg = arm_config(resolve(TrainConfig(loss="lsgan", steps=10, **TINY_POINTS)), f"r1:r1_gamma={gamma:g}", 0)
    assert cfg.tempering == "none" and cfg.r1_gamma == gamma
    trainer = Trainer.create(cfg, ring, torch.device("cpu"))
    D = copy.deepcopy(trainer.D)
    with Recorder(trainer) as rec:
        trainer.step()
    fakes = [c.output for c in rec.of("G", grad_enabled=False)]
    d_calls = rec.of("D", d_trainable=True)
    reals = [c.input for c in d_calls if not among(c.input, fakes)]
    fake = next(c.input for c in d_calls if among(c.input, fakes))
    assert reals and all(same(r, reals[0]) for r in reals)
    real = reals[0]
    data = ring.batch(torch.arange(len(ring)))
    assert (real[:, None, :] == data[None]).all(-1).any(1).all(), "D's real input is not the data itself (no tempering)"
    plain = d_loss("lsgan", D(real), D(fake))
    grads_plain = torch.autograd.grad(plain, list(D.parameters()), retain_graph=True)
    (plain + gamma / 2 * r1(D, real)).backward()
    assert_grads(D, trainer.D, "D")
    assert any(not torch.allclose(p.grad, g, rtol=1e-3) for p, g in zip(D.parameters(), grads_plain)), \
        "the penalty changed nothing here: the test could not tell it was applied"
    D.zero_grad(set_to_none=True)
    (d_loss("lsgan", D(real), D(fake)) + gamma / 2 * r1(D, fake)).backward()   # the penalty at G(Z): another update
    assert any(not torch.allclose(p.grad, q.grad, rtol=1e-3) for p, q in zip(D.parameters(), trainer.D.parameters()))
