import math

import pytest
import torch
from torch.testing import assert_close

from tempered_gan.method.losses import OBJECTIVES, gradient_penalty, reconstruction


def sigmoid(a):
    return 1 / (1 + math.exp(-a))


def mean(values):
    return sum(values) / len(values)


REAL = [0.5, 2.0, -1.0]   # D(L(X))
FAKE = [-1.0, 3.0, 0.0]   # D(G(Z))


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def test_original_gan_terms_match_the_log_formulas():
    gan = OBJECTIVES["gan"]
    d = mean([-math.log(sigmoid(r)) for r in REAL]) + mean([-math.log(1 - sigmoid(f)) for f in FAKE])
    g = mean([-math.log(sigmoid(f)) for f in FAKE])
    lens = mean([-math.log(1 - sigmoid(r)) for r in REAL])
    assert_close(gan.d_loss(t(REAL), t(FAKE)), t(d))
    assert_close(gan.g_loss(t(FAKE)), t(g))
    assert_close(gan.lens_loss(t(REAL)), t(lens))


def test_original_gan_terms_are_stable_for_large_logits():
    gan = OBJECTIVES["gan"]
    big = torch.tensor([200.0])
    assert_close(gan.lens_loss(big), torch.tensor(200.0))          # −log(1 − σ(200)) ≈ 200, not inf
    assert_close(gan.d_loss(-big, big), torch.tensor(400.0))
    assert_close(gan.g_loss(-big), torch.tensor(200.0))


def test_lsgan_terms():
    ls = OBJECTIVES["lsgan"]
    assert_close(ls.d_loss(t(REAL), t(FAKE)), t(mean([f * f for f in FAKE]) + mean([(r - 1) ** 2 for r in REAL])))
    assert_close(ls.g_loss(t(FAKE)), t(mean([(f - 1) ** 2 for f in FAKE])))
    assert_close(ls.lens_loss(t(REAL)), t(mean([r * r for r in REAL])))
    assert_close(ls.d_loss(t(REAL), t(FAKE)), t(10 / 3 + 5.25 / 3))  # by hand: (1+9+0)/3 + (0.25+1+4)/3


def test_wgan_terms_and_settings():
    w = OBJECTIVES["wgan-gp"]
    assert_close(w.d_loss(t(REAL), t(FAKE)), t(2 / 3 - 1.5 / 3))
    assert_close(w.g_loss(t(FAKE)), t(-2 / 3))
    assert_close(w.lens_loss(t(REAL)), t(1.5 / 3))
    assert (w.critic_steps, w.gp_weight) == (5, 10.0)
    assert OBJECTIVES["gan"].critic_steps == OBJECTIVES["lsgan"].critic_steps == 1


def test_gradient_penalty_of_a_linear_critic():
    w = torch.tensor([3.0, 4.0])                       # ‖∇D‖ = 5 everywhere ⇒ penalty (5 − 1)² = 16
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert_close(gradient_penalty(critic, real, fake, torch.rand(6)), torch.tensor(16.0))


def test_gradient_penalty_uses_the_interpolates():
    critic = lambda x: 0.5 * x.pow(2).flatten(1).sum(1)  # noqa: E731  ∇D(x) = x
    real = torch.tensor([[2.0, 0.0], [0.0, 4.0]])
    fake = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    alpha = torch.tensor([0.5, 0.25])                   # x̂ = (1, 0) and (0, 1): norms 1 ⇒ penalty 0
    assert_close(gradient_penalty(critic, real, fake, alpha), torch.tensor(0.0))
    alpha = torch.tensor([1.0, 1.0])                    # x̂ = real: norms 2 and 4 ⇒ (1 + 9)/2
    assert_close(gradient_penalty(critic, real, fake, alpha), torch.tensor(5.0))


def test_gradient_penalty_is_differentiable_for_the_critic():
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    gradient_penalty(lambda x: x @ w, torch.randn(4, 2), torch.randn(4, 2), torch.rand(4)).backward()
    assert_close(w.grad, 2 * (5 - 1) * w.detach() / 5)   # d/dw (‖w‖ − 1)²


def test_reconstruction_reductions():
    x = torch.zeros(2, 1, 2, 2)
    lensed = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[2.0, 0.0], [0.0, 0.0]]]])
    assert_close(reconstruction(x, lensed, "mean"), torch.tensor(8 / 8))          # (4 + 4) / 8 elements
    assert_close(reconstruction(x, lensed, "sum"), torch.tensor((4 + 4) / 2))     # per-sample sums, batch mean
    with pytest.raises(ValueError):
        reconstruction(x, lensed, "max")
