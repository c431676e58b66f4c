"""The success rule's FID bound of RULES.md, from real data alone (no GAN run): the classifier FID
of a perfect sampler of half the classes, i.e. 4096 real train images drawn (seeded) from classes
0–4 only, against the whole train set, with the features and sample count the study uses. A
generator that trains must be closer to the data than that. The Fashion-MNIST study's bound, and
the MNIST map's (docs/results/mnist) with the data set named:

    python docs/results/stability-fashion/anchor.py           # Fashion-MNIST; prints the bound, 3 digits
    python docs/results/stability-fashion/anchor.py mnist     # MNIST (TEMPERED_GAN_DATA or its usual place)
"""
import sys

import torch

from tempered_gan.data.loaders import load_dataset
from tempered_gan.metrics import EvalSettings, evaluate

SAMPLES = 4096


def main(dataset: str = "fashion-mnist") -> float:
    data = load_dataset(dataset)
    half = torch.nonzero(data.labels < 5).view(-1)
    pick = half[torch.randperm(len(half), generator=torch.Generator().manual_seed(0))[:SAMPLES]]
    scores = evaluate(lambda n: data.batch(pick[:n]), EvalSettings(dataset, features="classifier",
                                                                   n_samples=SAMPLES, kid=False))
    print(f"half the classes: FID {scores['fid']:.4g}, {scores['modes']} of {scores['modes_total']} modes")
    return scores["fid"]


if __name__ == "__main__":
    print(f"{main(*sys.argv[1:2]):.3g}")
