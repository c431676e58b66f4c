"""The success rule's FID bound of RULES.md, from real data alone (no GAN run): the classifier FID
of a perfect sampler of half the classes, i.e. 4096 real Fashion-MNIST train images drawn (seeded)
from classes 0–4 only, against the whole train set, with the features and sample count the study
uses. A generator that trains must be closer to the data than that.

    python docs/results/stability-fashion/anchor.py     # prints the bound, 3 significant digits
"""
import torch

from tempered_gan.data import load_dataset
from tempered_gan.metrics import EvalSettings, evaluate

SAMPLES = 4096


def main() -> float:
    data = load_dataset("fashion-mnist")
    half = torch.nonzero(data.labels < 5).view(-1)
    pick = half[torch.randperm(len(half), generator=torch.Generator().manual_seed(0))[:SAMPLES]]
    scores = evaluate(lambda n: data.batch(pick[:n]), EvalSettings("fashion-mnist", features="classifier",
                                                                   n_samples=SAMPLES, kid=False))
    print(f"half the classes: FID {scores['fid']:.4g}, {scores['modes']} of {scores['modes_total']} modes")
    return scores["fid"]


if __name__ == "__main__":
    print(f"{main():.3g}")
