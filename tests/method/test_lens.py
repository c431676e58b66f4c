import math

import pytest
import torch
from torch.testing import assert_close

from tempered_gan.method.lens import ImageLens, LambdaSchedule, PointLens, make_lens, sine_lambda, zero_last_layer


@pytest.mark.parametrize("k", [10_000, 1000, 7])
def test_sine_schedule_at_hand_computed_points(k):
    assert sine_lambda(0, k) == 1.0
    assert sine_lambda(k / 2, k) == pytest.approx(1 - math.sqrt(2) / 2, abs=1e-12)   # 0.2929
    assert sine_lambda(k, k) == pytest.approx(0.0, abs=1e-12)
    assert sine_lambda(k + 1, k) == 0.0
    assert sine_lambda(10 * k, k) == 0.0


def test_sine_is_monotone_and_matches_formula():
    k = 100
    values = [sine_lambda(t, k) for t in range(k + 2)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert values[30] == pytest.approx(1 - math.sin(30 * math.pi / 200))


def test_schedule_kinds():
    assert LambdaSchedule("sine", k=10)(5) == pytest.approx(1 - math.sin(math.pi / 4))
    assert LambdaSchedule("constant", value=1.0)(123_456) == 1.0
    assert LambdaSchedule("constant", value=0.25)(0) == 0.25
    with pytest.raises(ValueError, match="unknown λ schedule 'none'"):   # no tempering is a tempering, not a schedule
        LambdaSchedule("none")
    with pytest.raises(ValueError, match="unknown λ schedule"):
        LambdaSchedule("cosine")
    sine, constant = LambdaSchedule("sine", k=10), LambdaSchedule("constant")
    assert [sine.within(t) for t in (1, 9, 10, 11)] == [True, True, True, False] and sine.end == 10
    assert constant.within(10 ** 9) and constant.end is None
    with pytest.raises(ValueError, match="K must be positive"):
        LambdaSchedule("sine", k=-5)


def test_image_lens_global_skip_is_exact():
    torch.manual_seed(0)
    lens = ImageLens(channels=3, width=8, blocks=2)
    x = torch.randn(4, 3, 32, 32)
    assert_close(lens(x), x + lens.f(x), rtol=0, atol=0)   # L(x) = x + f(x)
    zero_last_layer(lens)
    assert torch.equal(lens(x), x)                          # f ≡ 0 ⇒ L is the identity


def test_point_lens_skip_and_shape():
    lens = PointLens(dim=2, width=16, blocks=3)
    x = torch.randn(10, 2)
    assert_close(lens(x), x + lens.f(x), rtol=0, atol=0)
    zero_last_layer(lens)
    assert torch.equal(lens(x), x)


def test_lens_architecture_follows_fig4():
    lens = make_lens((1, 32, 32))  # paper defaults: 32 feature maps, 8 residual blocks
    convs = [m for m in lens.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 + 8 * 2
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs)
    assert convs[0].out_channels == 32 and convs[-1].out_channels == 1
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in lens.modules()) == 16
    assert isinstance(make_lens((2,)), PointLens)
    with pytest.raises(ValueError):
        make_lens((3, 32))
