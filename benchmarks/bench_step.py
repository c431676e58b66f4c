"""Steps/s of our iteration without a lens against a minimal plain-PyTorch loop.

For each of gan, lsgan and wgan-gp, ``Trainer.step`` (lens "none") runs next to
a loop written here with the same nets (``make_nets``, same initial weights),
the same optimisers, batch, critic steps and gradient penalty. The plain loop
is the textbook iteration and nothing else: D step(s) on a real batch and
G(z) drawn without a graph, then a G step through D with D's parameters
switched off (``requires_grad_(False)``), noise from the global generator,
batches from one random permutation. Target: ours / plain >= 0.97.

    .venv/bin/python benchmarks/bench_step.py
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import interleaved, median, paired_ratio, parse_and_setup, table

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.method.nets import make_nets
from tempered_gan.training.trainer import Trainer

D_LOSS = {"gan": lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(),
          "lsgan": lambda r, f: f.pow(2).mean() + (r - 1).pow(2).mean(),
          "wgan-gp": lambda r, f: f.mean() - r.mean()}
G_LOSS = {"gan": lambda f: F.softplus(-f).mean(),
          "lsgan": lambda f: (f - 1).pow(2).mean(),
          "wgan-gp": lambda f: -f.mean()}


class PlainLoop:
    """The textbook GAN iteration on the trainer's nets (copied) and settings."""

    def __init__(self, trainer: Trainer):
        cfg, self.data = trainer.cfg, trainer.data
        self.cfg = cfg
        self.G, self.D = make_nets(cfg.arch, self.data.shape, cfg.z_dim, cfg.width)
        self.G.load_state_dict(trainer.G.state_dict())
        self.D.load_state_dict(trainer.D.state_dict())
        self.opt_g = torch.optim.Adam(self.G.parameters(), cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.perm, self.pos = torch.randperm(len(self.data)), 0

    def real_batch(self) -> torch.Tensor:
        b = self.cfg.batch_size
        if self.pos + b > len(self.perm):
            self.perm, self.pos = torch.randperm(len(self.data)), 0
        self.pos += b
        return self.data.batch(self.perm[self.pos - b:self.pos])

    def step(self) -> None:
        cfg, G, D = self.cfg, self.G, self.D
        for _ in range(cfg.critic_steps):
            x = self.real_batch()
            with torch.no_grad():
                fake = G(torch.randn(cfg.batch_size, cfg.z_dim))
            loss_d = D_LOSS[cfg.loss](D(x), D(fake))
            if cfg.gp_weight:
                alpha = torch.rand(cfg.batch_size, 1, 1, 1)
                mixed = (alpha * x + (1 - alpha) * fake).requires_grad_(True)
                (grad,) = torch.autograd.grad(D(mixed).sum(), mixed, create_graph=True)
                loss_d = loss_d + cfg.gp_weight * (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
            self.opt_d.zero_grad()
            loss_d.backward()
            self.opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        loss_g = G_LOSS[cfg.loss](D(G(torch.randn(cfg.batch_size, cfg.z_dim))))
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--losses", nargs="+", default=["gan", "lsgan", "wgan-gp"], choices=list(D_LOSS))
    ap.add_argument("--width", type=int, default=64, help="C for gan and lsgan (default 64, the preset)")
    ap.add_argument("--wgan-width", type=int, default=64,
                    help="C for wgan-gp (default 64 to stay affordable on CPU; the preset is 128)")
    ap.add_argument("--steps", type=int, default=1, help="steps per timed block, gan/lsgan (default 1)")
    ap.add_argument("--reps", type=int, default=40, help="interleaved blocks per arm, gan/lsgan (default 40)")
    ap.add_argument("--wgan-steps", type=int, default=1, help="steps per timed block, wgan-gp (default 1)")
    ap.add_argument("--wgan-reps", type=int, default=10, help="interleaved blocks per arm, wgan-gp (default 10)")
    ap.add_argument("--batch-size", type=int, default=64)
    args = parse_and_setup(ap)

    data = load_dataset("fashion-mnist")
    print(f"data     {data}, batch {args.batch_size}; first step of each arm is warm-up, not timed")
    print()
    rows = []
    for loss in args.losses:
        wgan = loss == "wgan-gp"
        cfg = resolve(TrainConfig(dataset="fashion-mnist", loss=loss, tempering="none", device="cpu",
                                  batch_size=args.batch_size, width=args.wgan_width if wgan else args.width))
        ours = Trainer.create(cfg, data, torch.device("cpu"))
        plain = PlainLoop(ours)
        steps, reps = (args.wgan_steps, args.wgan_reps) if wgan else (args.steps, args.reps)
        t = interleaved({"ours": ours.step, "plain": plain.step}, reps=reps, warmup=1, inner=steps)
        ratio, lo, hi = paired_ratio(t["plain"], t["ours"])   # time plain / time ours = speed ours / plain
        rows.append([loss, cfg.width, cfg.critic_steps, f"{reps}×{steps}", 1 / median(t["ours"]),
                     1 / median(t["plain"]), ratio, f"{lo:.3f}–{hi:.3f}", "yes" if ratio >= 0.97 else "no"])
        print(f"{loss}: done", flush=True)
    print()
    table(["loss", "C", "critic steps", "blocks×steps", "ours steps/s", "plain steps/s",
           "ours/plain (median)", "range over blocks", "≥ 0.97"], rows)


if __name__ == "__main__":
    main()
