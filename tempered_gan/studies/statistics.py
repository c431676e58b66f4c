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
SIGNIFICANCE = 1 - CONFIDENCE     # a test's p below this is a verdict
BOOTSTRAP_REPS = 2000             # bootstrap replications of the across-cell intervals
BOOTSTRAP_SEED = 0                # fixed, so that the same runs give the same report
# Convergence: a straight line through the last CONVERGENCE_WINDOW evaluations; its change
# over the window is judged against the scatter of those evaluations about it (docs/DECISIONS.md).
CONVERGENCE_WINDOW = 5
CONVERGED, IMPROVING, DIVERGING, TOO_SHORT = "converged", "still improving", "diverging", "too few evaluations"

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
    verdict: str                      # "better", "worse" (or either "(sign test)"), "cannot tell with N seeds"
    left_out: int = 0                 # seeds both arms ran whose value was NaN or infinite in either

    @property
    def n(self) -> int:
        return len(self.differences)


def paired(reference: dict[int, float], arm: dict[int, float], *, lower_is_better: bool = True,
           confidence: float = CONFIDENCE) -> Paired:
    """Per-seed differences ``arm[s] − reference[s]`` over the seeds both have a finite value
    for, their mean with a two-sided Student-t interval, wins/losses/ties and the verdict:
    ``better`` when the whole interval lies on the better side of 0, ``worse`` when it lies
    on the other, else "cannot tell with N seeds".

    Seeds where either value is NaN or infinite are left out and counted in ``left_out``.
    When every difference is the same (sd = 0) the t interval has no width and says
    nothing about the spread; the verdict then comes from the two-sided sign test on the
    wins and losses (scipy's ``binomtest``), and the interval is left out."""
    from scipy import stats

    common = sorted(set(reference) & set(arm))
    seeds = [s for s in common if math.isfinite(reference[s]) and math.isfinite(arm[s])]
    diffs = [arm[s] - reference[s] for s in seeds]
    sign = -1.0 if lower_is_better else 1.0          # sign · diff > 0 means the arm is better
    wins = sum(sign * d > 0 for d in diffs)
    losses = sum(sign * d < 0 for d in diffs)
    mean = statistics.fmean(diffs) if diffs else None
    low = high = None
    verdict = f"cannot tell with {len(diffs)} seed{'s' if len(diffs) != 1 else ''}"
    # Differences equal up to rounding have no spread either (1e-9 of their size).
    if len(diffs) >= 2 and statistics.stdev(diffs) > 1e-9 * max(1.0, abs(mean)):
        half = stats.t.ppf(0.5 + confidence / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
        low, high = mean - half, mean + half
        if low > 0 or high < 0:
            verdict = BETTER if sign * mean > 0 else WORSE
    elif wins + losses and sign_test(wins, losses) < 1 - confidence:
        verdict = f"{BETTER if wins > losses else WORSE} (sign test)"
    return Paired(seeds, diffs, mean, low, high, wins, losses, len(diffs) - wins - losses, verdict,
                  left_out=len(common) - len(seeds))


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (scipy's ``binomtest``); None when n = 0."""
    if n == 0:
        return None
    from scipy import stats
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def sign_test(better: int, worse: int) -> float:
    """The exact two-sided sign test: p of ``better`` against ``worse`` under a fair coin (1 when both are 0).
    Over the discordant seeds of two arms (one trained or collapsed, the other not) it is McNemar's exact test."""
    from scipy.stats import binomtest

    n = better + worse
    return 1.0 if n == 0 else float(binomtest(better, n, 0.5).pvalue)


def median_or_none(values: list[float | None]) -> float | None:
    """The median of the finite values; None when there is none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else None


def seed_difference(differences, verdicts: tuple[str, str] = ("better", "worse")) -> dict:
    """From a (seeds × cells) matrix of differences (arm − reference): the per-seed means over cells,
    their mean, a bootstrap interval that resamples seeds (all cells together), the exact sign test of the
    per-seed means, and the verdict: ``verdicts[0]`` when the interval lies wholly above 0 and p < SIGNIFICANCE,
    ``verdicts[1]`` when wholly below, else "cannot tell"."""
    import numpy as np

    per_seed = np.asarray(differences).mean(axis=1)
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, len(per_seed), (BOOTSTRAP_REPS, len(per_seed)))
    means = per_seed[draws].mean(axis=1)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    better, worse = int((per_seed > 0).sum()), int((per_seed < 0).sum())
    p = sign_test(better, worse)
    verdict = (verdicts[0] if low > 0 and p < SIGNIFICANCE else verdicts[1] if high < 0 and p < SIGNIFICANCE
               else "cannot tell")
    return {"mean": float(per_seed.mean()), "interval": (float(low), float(high)), "better": better, "worse": worse,
            "p": p, "verdict": verdict}


@dataclass
class Trend:
    """Where a run's FID was heading over its last evaluations."""

    state: str                        # CONVERGED, IMPROVING, DIVERGING or TOO_SHORT
    change: float | None = None       # fitted change over the window (last − first step), FID units
    noise: float | None = None        # scatter of the evaluations about the fitted line (sd)
    margin: float | None = None       # the largest |change| the scatter allows (95 %)
    best_step: float | None = None    # step of the best evaluation, when at least a window of them follow it
    drift: float | None = None        # fitted change over the evaluations after the best (last − first step)
    drift_margin: float | None = None  # the largest |drift| their scatter allows (95 %)


def _fitted_change(xs: list[float], ys: list[float], confidence: float) -> tuple[float, float, float] | None:
    """Least-squares line through (xs, ys): its change from the first x to the last, the scatter
    about it (sd, n − 2 degrees of freedom) and the largest |change| that scatter allows (the
    two-sided Student-t interval of the slope, times the span). None when every x is the same."""
    from scipy import stats

    n = len(xs)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    noise = math.sqrt(sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys)) / (n - 2))
    span = xs[-1] - xs[0]
    margin = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * noise / math.sqrt(sxx) * span
    return slope * span, noise, margin


def trend(values: list[float], *, window: int = CONVERGENCE_WINDOW, steps: list[int] | None = None,
          lower_is_better: bool = True, confidence: float = CONFIDENCE) -> Trend:
    """Classify a metric's last ``window`` values against their own noise.

    A straight line is fitted through them (least squares, against ``steps``, or equally
    spaced); its change over the window is compared with what the scatter about the line
    allows: the two-sided Student-t interval of the slope with ``window`` − 2 degrees of
    freedom. Within it: ``converged`` (no trend the evaluations can tell from their noise).
    Beyond it, getting better: ``still improving``; getting worse: ``diverging``. The
    scatter is the evaluation's noise plus G's own wander between evaluations; both are
    what a reader of the curve has to see through. A series with no scatter at all has
    a margin of 0, so any steady rise is diverging. A NaN or infinite value anywhere is
    divergence. Fewer than ``window`` values (at least 3): ``too few evaluations``.

    A drift slower than the window's noise passes the window test, so a second line is
    fitted through every value *after* the best one, when at least ``window`` follow it
    (the best itself is left out: as the minimum of many noisy values it sits low and
    would tilt the line up). A run the window calls converged whose values have got
    worse since their best by more than that line's margin is ``diverging``."""
    if any(not math.isfinite(v) for v in values):
        return Trend(DIVERGING)
    window = max(window, 3)
    if len(values) < window:
        return Trend(TOO_SHORT)
    ys = [float(v) for v in values]
    xs = [float(x) for x in (steps if steps is not None else range(len(ys)))]
    fit = _fitted_change(xs[-window:], ys[-window:], confidence)
    if fit is None:                   # every evaluation at one step: no trend to fit
        return Trend(TOO_SHORT)
    change, noise, margin = fit
    if abs(change) <= margin:
        state = CONVERGED
    else:
        state = IMPROVING if (change < 0) == lower_is_better else DIVERGING
    best = (min if lower_is_better else max)(range(len(ys)), key=ys.__getitem__)
    after = _fitted_change(xs[best + 1:], ys[best + 1:], confidence) if len(ys) - best - 1 >= window else None
    if after is None:
        return Trend(state, change, noise, margin)
    drift, _, drift_margin = after
    if state == CONVERGED and abs(drift) > drift_margin and (drift > 0) == lower_is_better:
        state = DIVERGING
    return Trend(state, change, noise, margin, xs[best], drift, drift_margin)


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
