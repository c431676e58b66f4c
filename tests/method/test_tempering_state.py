"""A tempering's state_dict, load_state_dict and to(): a loop of one's own, resumed from them, is the straight loop."""
import io

import pytest
import torch
from torch import nn

from tempered_gan import GaussianBlur, ImageLens, InstanceNoise, LambdaSchedule, Tempering


def make(kind: str):
    """G, D, their optimisers and a tempering, all from fixed seeds (a fresh process would build the same)."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 3 * 8 * 8), nn.Unflatten(1, (3, 8, 8)), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 4 * 4, 1))
    schedule = LambdaSchedule("sine", k=6)
    if kind == "lens":
        tempering = Tempering(ImageLens(channels=3, width=4, blocks=1), schedule, objective="gan")
    elif kind == "noise":
        tempering = InstanceNoise(schedule, sigma=0.5, generator=torch.Generator().manual_seed(7))
    else:
        tempering = GaussianBlur(schedule, sigma=1.0)
    opts = [torch.optim.Adam(n.parameters(), 1e-3) for n in (G, D)]
    return G, D, opts, tempering


def steps(G, D, opts, tempering, first: int, last: int) -> None:
    bce = nn.BCEWithLogitsLoss()
    for t in range(first, last + 1):
        data = torch.Generator().manual_seed(1000 + t)       # the batch and noise of step t, wherever it runs
        x = torch.rand(4, 3, 8, 8, generator=data) * 2 - 1
        lam = tempering.schedule(t)
        real = tempering.real(x, lam=lam)
        fake = G(torch.randn(4, 8, generator=data))
        d_real, d_fake = D(real), D(tempering.fake(fake.detach(), lam=lam))
        loss_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        opts[1].zero_grad()
        loss_d.backward()
        opts[1].step()
        d_fake = D(tempering.fake(fake, lam=lam))
        loss_g = bce(d_fake, torch.ones_like(d_fake))
        opts[0].zero_grad()
        loss_g.backward()
        opts[0].step()
        tempering.step(D, t)


def everything(G, D, opts, tempering) -> dict:
    return {"G": G.state_dict(), "D": D.state_dict(), "opt_g": opts[0].state_dict(), "opt_d": opts[1].state_dict(),
            "tempering": tempering.state_dict()}


def tensors(state) -> list[torch.Tensor]:
    if torch.is_tensor(state):
        return [state]
    if isinstance(state, dict):
        return [t for k in sorted(state, key=str) for t in tensors(state[k])]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in tensors(v)]
    return []


@pytest.mark.parametrize("kind", ["lens", "noise", "blur"])
def test_a_loop_resumed_from_the_state_dicts_matches_the_straight_loop_bit_for_bit(kind):
    straight = make(kind)
    steps(*straight, 1, 8)                       # crosses K = 6

    first = make(kind)
    steps(*first, 1, 3)
    buffer = io.BytesIO()
    torch.save(everything(*first), buffer)       # through a file, as a checkpoint goes
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = make(kind)
    G, D, opts, tempering = resumed
    for module, key in ((G, "G"), (D, "D"), (opts[0], "opt_g"), (opts[1], "opt_d"), (tempering, "tempering")):
        module.load_state_dict(saved[key])
    steps(*resumed, 4, 8)

    a, b = tensors(everything(*straight)), tensors(everything(*resumed))
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    if kind != "blur":                           # the state matters: without it the run differs
        fresh = make(kind)
        G, D, opts, _ = fresh
        for module, key in ((G, "G"), (D, "D"), (opts[0], "opt_g"), (opts[1], "opt_d")):
            module.load_state_dict(saved[key])
        steps(*fresh, 4, 8)
        assert not all(torch.equal(x, y) for x, y in zip(a, tensors(everything(*fresh))))


def test_a_state_of_another_kind_or_shape_is_refused():
    lens, noise = make("lens")[3], make("noise")[3]
    with pytest.raises(ValueError, match="InstanceNoise state does not fit a Tempering"):
        lens.load_state_dict(noise.state_dict())
    blur = make("blur")[3]
    with pytest.raises(ValueError, match="other parts"):
        InstanceNoise(LambdaSchedule("sine", k=6), sigma=0.5).load_state_dict(
            {**blur.state_dict(), "kind": "InstanceNoise", "generators": [torch.zeros(1)]})


def test_to_moves_the_lens_and_its_optimiser_state():
    G, D, opts, tempering = make("lens")
    steps(G, D, opts, tempering, 1, 2)
    assert tempering.to("meta") is tempering        # "meta" stands in for a device the CPU cannot have
    assert all(p.device.type == "meta" for p in tempering.lens.parameters())
    moments = [v for s in tempering.optimizer.state.values() for k, v in s.items() if k != "step"]
    assert moments and all(m.device.type == "meta" for m in moments)
