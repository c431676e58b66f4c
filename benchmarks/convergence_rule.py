"""How often the report's convergence rule mislabels a run whose FID is flat (docs/DECISIONS.md).

Simulates flat FID series (mean 100, Gaussian noise of sd 3, seeded) of 10, 20 and 40
evaluations and prints, for each length, the share of series the 5-evaluation window
alone calls converged / still improving / diverging, and the share the full rule
(window plus the line through every FID after the best) moves from converged to diverging.

    PYTHONPATH=. python benchmarks/convergence_rule.py [--series 2000] [--seed 0]
"""
from __future__ import annotations

import argparse
import random
from collections import Counter

from tempered_gan.studies.statistics import CONVERGED, CONVERGENCE_WINDOW, DIVERGING, IMPROVING, trend


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=2000, help="simulated series per length")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print("| evaluations | window: converged / improving / diverging | moved to diverging by the line after the best |")
    print("|---|---|---|")
    for n in (10, 20, 40):
        window, moved = Counter(), 0
        for _ in range(args.series):
            ys = [100 + rng.gauss(0, 3) for _ in range(n)]
            alone = trend(ys[-CONVERGENCE_WINDOW:]).state
            window[alone] += 1
            moved += alone == CONVERGED and trend(ys).state == DIVERGING
        shares = " / ".join(f"{100 * window[s] / args.series:.1f} %" for s in (CONVERGED, IMPROVING, DIVERGING))
        print(f"| {n} | {shares} | {100 * moved / args.series:.1f} % |")


if __name__ == "__main__":
    main()
