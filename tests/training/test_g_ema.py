"""--g-ema: a moving average of G's weights, which eval, sample and the grids use; it changes
nothing that is trained, and it is checkpointed and resumed bit for bit."""
import json

import torch
from helpers import TINY_POINTS, TINY_POINTS_ARGS

from tempered_gan.cli.main import main
from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.method.nets import eval_mode
from tempered_gan.training.randomness import seed_for
from tempered_gan.training.trainer import Trainer

TINY = dict(TINY_POINTS, k=3, steps=6)
FLAGS = [*TINY_POINTS_ARGS, "--k", "3",
         "--log-every", "2", "--no-progress"]


def make(ring, **options) -> Trainer:
    return Trainer.create(resolve(TrainConfig(**{**TINY, **options})), ring, torch.device("cpu"))


def test_the_average_follows_its_formula_and_trains_nothing(ring):
    decay = 0.75
    averaged, plain = make(ring, g_ema=decay), make(ring)
    expected = [p.detach().clone() for p in averaged.G.parameters()]      # the average starts at G's weights
    for _ in range(5):
        averaged.step(), plain.step()
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, averaged.G.parameters())]
    assert all(torch.allclose(e, a, atol=1e-6) for e, a in zip(expected, averaged.G_ema.parameters()))
    assert not all(torch.equal(e, p) for e, p in zip(averaged.G_ema.parameters(), averaged.G.parameters()))
    for net in ("G", "D"):                                                 # what is trained is the same
        a, b = getattr(averaged, net).state_dict(), getattr(plain, net).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), net
    assert plain.G_ema is None and plain.state_dict()["G_ema"] is None


def test_eval_and_the_grids_draw_from_the_average(ring):
    tr = make(ring, g_ema=0.5)
    for _ in range(3):
        tr.step()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, tr.cfg.z_dim, generator=g)
    assert torch.equal(tr.sampler_net(z), tr.G_ema(z)) and not torch.equal(tr.G_ema(z), tr.G(z))
    stream = torch.Generator().manual_seed(seed_for(tr.cfg.seed, "eval"))     # eval's own noise stream
    with torch.no_grad(), eval_mode(tr.G_ema):
        by_hand = tr.G_ema(torch.randn(8, tr.cfg.z_dim, generator=stream))
    assert torch.equal(tr.generate(8), by_hand)


def test_the_average_is_checkpointed_and_resumed_bit_for_bit(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", "--steps", "6", "--g-ema", "0.9", "--out", str(straight), "--checkpoint-every", "3", *FLAGS]) == 0
    assert main(["train", "--steps", "3", "--g-ema", "0.9", "--out", str(split), "--checkpoint-every", "3", *FLAGS]) == 0
    assert main(["train", "--resume", str(split), "--steps", "6"]) == 0
    a, b = (torch.load(p / "checkpoint.pt", weights_only=True)["G_ema"] for p in (straight, split))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    capsys.readouterr()
    assert main(["eval", str(split)]) == 0
    assert "moving average" in json.loads(capsys.readouterr().out)["generator"]
