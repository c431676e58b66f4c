"""Statistics of a comparison: paired differences between arms, failure rates, convergence.

Every arm of a seed starts from the same G and D weights and sees the same
batches and noise, so arms are compared seed by seed: for each seed the
difference (arm − reference) of a metric, then the mean of those differences
with a 95 % Student-t interval, wins and losses, and a plain verdict. The
distributions come from scipy; nothing here is a hand-written quantile.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

CONFIDENCE = 0.95
# A run has converged when its last CONVERGED_WINDOW evaluations do not improve on the best
# evaluation before them by more than CONVERGED_TOLERANCE (relative; docs/DECISIONS.md).
CONVERGED_WINDOW = 3
CONVERGED_TOLERANCE = 0.05

BETTER, WORSE = "better", "worse"


@dataclass
class Paired:
    """Arm against reference on one metric, over the seeds where both have a value."""

    seeds: list[int]
    differences: list[float]          # arm − reference, per seed, in ``seeds`` order
    mean: float | None
    low: float | None                 # 95 % interval of the mean difference (None with < 2 seeds)
    high: float | None
    wins: int                         # seeds on which the arm is better than the reference
    losses: int
    ties: int
    verdict: str                      # "better", "worse" or "cannot tell with N seeds"

    @property
    def n(self) -> int:
        return len(self.differences)


def paired(reference: dict[int, float], arm: dict[int, float], *, lower_is_better: bool = True,
           confidence: float = CONFIDENCE) -> Paired:
    """Per-seed differences ``arm[s] − reference[s]`` over the seeds both have, their mean
    with a two-sided Student-t interval, wins/losses/ties and the verdict: ``better`` when
    the whole interval lies on the better side of 0, ``worse`` when it lies on the other,
    else "cannot tell with N seeds"."""
    from scipy import stats

    seeds = sorted(set(reference) & set(arm))
    diffs = [arm[s] - reference[s] for s in seeds]
    sign = -1.0 if lower_is_better else 1.0          # sign · diff > 0 means the arm is better
    wins = sum(sign * d > 0 for d in diffs)
    losses = sum(sign * d < 0 for d in diffs)
    mean = statistics.fmean(diffs) if diffs else None
    low = high = None
    if len(diffs) >= 2:
        sd = statistics.stdev(diffs)
        half = stats.t.ppf(0.5 + confidence / 2, len(diffs) - 1) * sd / math.sqrt(len(diffs))
        low, high = mean - half, mean + half
    verdict = f"cannot tell with {len(diffs)} seed{'s' if len(diffs) != 1 else ''}"
    if low is not None and (low > 0 or high < 0):
        verdict = BETTER if sign * mean > 0 else WORSE
    return Paired(seeds, diffs, mean, low, high, wins, losses, len(diffs) - wins - losses, verdict)


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (scipy's ``binomtest``); None when n = 0."""
    if n == 0:
        return None
    from scipy import stats
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def converged(values: list[float], *, window: int = CONVERGED_WINDOW, tolerance: float = CONVERGED_TOLERANCE,
              lower_is_better: bool = True) -> bool:
    """Whether a metric has stopped improving: its last ``window`` values do not beat the
    best value before them by more than ``tolerance`` (relative). Needs ``window`` + 1 values.

    A run whose FID still falls fast fails this; one that has levelled off, or got worse,
    passes (it has stopped improving, whatever the level)."""
    if len(values) < window + 1:
        return False
    before, last = values[:-window], values[-window:]
    if lower_is_better:
        return min(last) >= min(before) * (1 - tolerance)
    return max(last) <= max(before) * (1 + tolerance)


def format_interval(p: Paired, digits: str = ".3g") -> str:
    """``mean [low, high]``, signed, or the mean alone when there is no interval."""
    if p.mean is None:
        return "–"
    if p.low is None:
        return f"{p.mean:+{digits}}"
    return f"{p.mean:+{digits}} [{p.low:+{digits}}, {p.high:+{digits}}]"


def format_rate(k: int, n: int) -> str:
    """``k/n (p %, 95 % CI lo–hi %)`` with the Wilson interval."""
    ci = wilson(k, n)
    if ci is None:
        return "0/0"
    return f"{k}/{n} ({100 * k / n:.0f} %; {100 * ci[0]:.0f}–{100 * ci[1]:.0f} %)"
