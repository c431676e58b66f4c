"""How far the same computation moves across batch shapes, thread counts and CPU instruction sets.

docs/DECISIONS.md ("Bit for bit, or to rounding") quotes its output. It runs
itself once per setting, ``ONEDNN_MAX_CPU_ISA`` left to the default or set to
AVX2 and ``OMP_NUM_THREADS`` 1 or 2, each in a fresh process, on seeded random
images (no data set needed), and reports against the first setting:

- features of one FID classifier (trained in that process) of the same images
  in a batch of B and in the colour extractor's batch of 3 x B: for how many
  of B = 1 ... 40 they differ at all, and the largest difference, also as a
  fraction of the largest feature (tests/metrics/test_metrics.py allows 1e-5 of it);
- how far from the first setting's the weights of a small DCGAN with the lens
  end after 20 steps, and those of a small FID classifier after 2 epochs.

    .venv/bin/python benchmarks/bench_rounding.py
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from _timing import cpu_model

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import Data
from tempered_gan.metrics import classifier as C
from tempered_gan.training.trainer import Trainer

SETTINGS = [("default", 1), ("AVX2", 1), ("default", 2), ("AVX2", 2)]
CLASSIFIER = C.ClassifierSettings(train_samples=512, epochs=2, batch_size=32, width=8, feature_dim=32)
DCGAN = dict(dataset="mnist", batch_size=8, width=8, z_dim=8, lens_width=4, lens_blocks=1, steps=20, k=10)


def random_images(n: int, seed: int) -> Data:
    g = torch.Generator().manual_seed(seed)
    return Data("random", "image", torch.randint(0, 256, (n, 1, 32, 32), generator=g, dtype=torch.uint8),
                torch.randint(0, 10, (n,), generator=g))


def measure(out: Path) -> None:
    """One setting (the environment of this process): write what it computed to ``out``."""
    train = random_images(512, seed=0)
    net, _, _ = C._train_classifier(train, random_images(64, seed=1), torch.arange(512), CLASSIFIER, torch.device("cpu"))
    grey = C.ClassifierFeatures(net, key="", accuracy=0.0, trained_on="random", per_channel=False)
    colour = C.ClassifierFeatures(net, key="", accuracy=0.0, trained_on="random", per_channel=True)
    x, dim = train.batch(torch.arange(40)), CLASSIFIER.feature_dim
    differing, largest, scale = 0, 0.0, 0.0
    with torch.no_grad():
        for b in range(1, 41):
            channels = (x[:b], x[:b].flip(0), -x[:b])
            stacked = colour(torch.cat(channels, dim=1))
            for i, images in enumerate(channels):
                alone = grey(images)
                differing += not torch.equal(stacked[:, i * dim:(i + 1) * dim], alone)
                largest = max(largest, (stacked[:, i * dim:(i + 1) * dim] - alone).abs().max().item())
                scale = max(scale, alone.abs().max().item())
    trainer = Trainer.create(resolve(TrainConfig(**DCGAN)), train, torch.device("cpu"))
    for _ in range(DCGAN["steps"]):
        trainer.step()
    torch.save({"differing": differing, "largest": largest, "scale": scale, "threads": torch.get_num_threads(),
                "dcgan": {f"{n}.{k}": v for n in ("G", "D") for k, v in getattr(trainer, n).state_dict().items()},
                "classifier": net.state_dict()}, out)


def farthest(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)   # a child: measure this process's setting
    args = ap.parse_args()
    if args.one:
        return measure(args.one)
    print(f"machine  {os.cpu_count()} cores ({cpu_model()}), torch {torch.__version__}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for isa, threads in SETTINGS:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            env.pop("ONEDNN_MAX_CPU_ISA", None)
            if isa != "default":
                env["ONEDNN_MAX_CPU_ISA"] = isa
            out = Path(tmp) / f"{isa}-{threads}.pt"
            subprocess.run([sys.executable, __file__, "--one", str(out)], env=env, check=True)
            results[isa, threads] = torch.load(out, weights_only=True)
    ref = results[SETTINGS[0]]
    print(f"{'ISA':8} {'threads':>7}  {'comparisons differing':>21}  {'largest difference':>18}  {'of largest feature':>18}"
          f"  {'DCGAN weights vs first':>22}  {'classifier vs first':>19}")
    for (isa, _), r in results.items():
        print(f"{isa:8} {r['threads']:7d}  {r['differing']:>14d} of 120  {r['largest']:18.2g}  "
              f"{r['largest'] / r['scale']:18.2g}  {farthest(ref['dcgan'], r['dcgan']):22.2g}  "
              f"{farthest(ref['classifier'], r['classifier']):19.2g}")


if __name__ == "__main__":
    main()
