"""The report of a sweep: ``OUT/report.md`` and ``OUT/map.png`` (see :mod:`tempered_gan.studies.sweep`)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tempered_gan.config.train_config import TrainConfig
from tempered_gan.studies.arms import Arm
from tempered_gan.studies.compare_report import PARTIAL_COLLAPSE
from tempered_gan.studies.shards import note_unfinished
from tempered_gan.studies.statistics import (
    BOOTSTRAP_REPS,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    SIGNIFICANCE,
    format_rate,
    median_or_none,
    seed_difference,
    sign_test,
)
from tempered_gan.studies.success import trains
from tempered_gan.training.run_log import save_figure
from tempered_gan.util.atomic_files import atomic_write_bytes


def _fmt(value: float | None, digits: str = ".3g") -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:{digits}}"


def _interval(point: float, low_high, digits: str = ".2f") -> str:
    return f"{point:{digits}} [{low_high[0]:{digits}}, {low_high[1]:{digits}}]"


VERDICTS = ("**widens** the region where training works", "**narrows** the region where training works")


def write_sweep_report(out: Path, cells: list, arms: list[Arm], seeds: list[int], results: dict, others: list[str], *,
                       rule: tuple, reference: str, map_axes: list[str], command: str, base: TrainConfig,
                       total: int) -> Path:
    """``results``: {(cell, arm name, seed): RunResult} of the finished runs."""
    fid_max, modes_min = rule
    labels = {a.name: a.label for a in arms}
    ok = {key: trains(r, fid_max, modes_min) for key, r in results.items()}
    rule_text = (f"a run **trains** when it ends without a NaN or Inf loss or FID, with a final FID of at most "
                 f"{fid_max:g} (--fail-fid)" + (f" and at least {modes_min} modes at the last evaluation (--fail-modes)"
                                                if modes_min else "") + "; otherwise it failed")
    axes = [k for k, _ in cells[0].values]
    lines = [f"# Sweep: {base.dataset}, {', '.join(axes)}", "",
             f"Cells: {len(cells)} ({'; '.join(k + ' ∈ {' + ', '.join(map(str, _levels(cells, k))) + '}' for k in axes)}); "
             f"arms: {', '.join(labels[a.name] for a in arms)}; seeds: {', '.join(map(str, seeds))}. In each cell, for "
             "each seed, every arm starts from the same G and D weights, data order and noise.",
             "", f"**Success rule** (absolute, fixed before the runs): {rule_text}.", ""]
    lines += _cell_table(cells, arms, seeds, results, ok, reference, labels)
    lines += _aggregate(cells, arms, seeds, results, ok, reference, labels, fid_max)
    write_map(out, cells, arms, seeds, ok, reference, labels, map_axes)
    lines += ["![success rate per cell](map.png)", "",
              "Each cell's own comparison (FID curves, trends, paired differences): `cells/<cell>/report.md`.", "",
              "## How this was produced", "", "```", command, "```", "",
              "Configuration of the first run of the first cell (other runs differ in the cell's axes and what "
              "defaults to them, such as the lens's learning rate, which is lr unless --lens-lr is given; in the "
              "seed; and in their arm's options):", "", "```json", base.to_json(), "```", ""]
    report = out / "report.md"
    atomic_write_bytes(report, "\n".join(lines).encode())
    note_unfinished(report, others, total)
    return report


def _cell_table(cells, arms, seeds, results, ok, reference, labels) -> list[str]:
    stacked = any(r.final(PARTIAL_COLLAPSE) is not None for r in results.values())
    lines = ["## Per cell", "",
             f"Trains: runs that trained of those finished, with the {CONFIDENCE:.0%} Wilson interval. Against "
             f"{labels[reference]}, seed by seed: *arm only* counts the seeds on which the arm trained and the reference "
             "failed, *reference only* the reverse; p is the exact two-sided binomial (McNemar) test of those "
             "discordant seeds. Median final FID over the runs with a finite one."
             + (" Partly collapsed: runs whose channels at the end were some like the grey data and some not, of "
                "those judged (docs/METRICS.md)." if stacked else ""), "",
             "| cell | arm | trains | arm only / reference only | McNemar p | median final FID | "
             + ("partly collapsed | " if stacked else "") + "best arm here |",
             "|---|---|---|---|---|---|" + ("---|" if stacked else "") + "---|"]
    for cell in cells:
        rates = {}
        for arm in arms:
            done = [s for s in seeds if (cell, arm.name, s) in results]
            k = sum(ok[cell, arm.name, s] for s in done)
            rates[arm.name] = (k / len(done)) if done else -1
        top = max(rates.values())
        best = ", ".join(labels[a] for a, r in rates.items() if r == top) if top > 0 else "–"
        for i, arm in enumerate(arms):
            done = [s for s in seeds if (cell, arm.name, s) in results]
            k = sum(ok[cell, arm.name, s] for s in done)
            versus, p = "–", "–"
            both = [s for s in done if (cell, reference, s) in results] if arm.name != reference else []
            if both:
                a_only = sum(ok[cell, arm.name, s] and not ok[cell, reference, s] for s in both)
                r_only = sum(ok[cell, reference, s] and not ok[cell, arm.name, s] for s in both)
                versus, p = f"{a_only} / {r_only}", f"{sign_test(a_only, r_only):.3g}"
            median = median_or_none([results[cell, arm.name, s].final_fid for s in done])
            collapse = ""
            if stacked:
                judged = [c for c in (results[cell, arm.name, s].final(PARTIAL_COLLAPSE) for s in done)
                          if c is not None and math.isfinite(c)]
                collapse = f"{format_rate(int(sum(judged)), len(judged))} | "
            lines.append(f"| {cell.name if i == 0 else ''} | {labels[arm.name]} | {format_rate(k, len(done))} | "
                         f"{versus} | {p} | {_fmt(median)} | {collapse}{best if i == 0 else ''} |")
    return lines + [""]


def _matrices(cells, arms, seeds, results, ok, fid_cap: float) -> tuple[dict, dict]:
    """Per arm, (seeds × cells) matrices of success (0/1) and of final FID (a run without one at ``fid_cap``)."""
    success, fid = {}, {}
    for arm in arms:
        success[arm.name] = np.array([[float(ok[c, arm.name, s]) for c in cells] for s in seeds])
        values = [[results[c, arm.name, s].final_fid for c in cells] for s in seeds]
        fid[arm.name] = np.array([[v if v is not None and math.isfinite(v) else fid_cap for v in row] for row in values])
    return success, fid


def _aggregate(cells, arms, seeds, results, ok, reference, labels, fid_max) -> list[str]:
    if len(results) < len(cells) * len(arms) * len(seeds):
        return ["## Across cells", "", "Not yet: the aggregate needs every run of every cell (see below).", ""]
    import warnings

    from rliable import library as rly
    from rliable import metrics

    finite = [r.final_fid for r in results.values() if r.final_fid is not None and math.isfinite(r.final_fid)]
    cap = max(finite + [fid_max])
    success, fid = _matrices(cells, arms, seeds, results, ok, cap)

    def estimates(*args, **kwargs):
        """rliable's stratified bootstrap, reproducible: rliable draws from NumPy's global generator
        (its random_state argument does not reach the draws), so it is seeded here and restored after."""
        saved = np.random.get_state()
        np.random.seed(BOOTSTRAP_SEED)
        try:
            with warnings.catch_warnings():     # arch's notice about rliable's random_state argument
                warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
                return rly.get_interval_estimates(*args, reps=BOOTSTRAP_REPS, confidence_interval_size=CONFIDENCE,
                                                  random_state=np.random.RandomState(BOOTSTRAP_SEED), **kwargs)
        finally:
            np.random.set_state(saved)

    mean = lambda x: np.array([np.mean(x)])  # noqa: E731
    rate, rate_ci = estimates(success, mean)
    iqm, iqm_ci = estimates(fid, lambda x: np.array([metrics.aggregate_iqm(x)]))
    # rliable takes higher as better: the probability that the arm's final FID is *lower* is P(−FID_arm > −FID_ref).
    pairs = {a.name: [-fid[a.name], -fid[reference]] for a in arms if a.name != reference}
    poi, poi_ci = (estimates(pairs, lambda x, y: np.array([metrics.probability_of_improvement(x, y)]))
                   if pairs else ({}, {}))
    diff = {a.name: seed_difference(success[a.name] - success[reference], VERDICTS) for a in arms if a.name != reference}
    lines = ["## Across cells", "",
             f"Mean success rate over the {len(cells)} cells (each cell weighs the same), with a {CONFIDENCE:.0%} "
             f"stratified bootstrap interval over seeds within cells (rliable, {BOOTSTRAP_REPS} replications, "
             f"percentile). Difference from {labels[reference]}: for each seed, the mean over cells of the arm's "
             "success minus the reference's on that seed (a seed starts from the same weights, batches and noise in "
             f"every cell, so the seed is the unit): their mean, a {CONFIDENCE:.0%} bootstrap interval that resamples "
             f"seeds (the same seeds in every cell; {BOOTSTRAP_REPS} replications, percentile), and the exact "
             "two-sided sign test of the per-seed differences (seeds with none left out). IQM (interquartile mean) "
             f"of final FID over every run, a run without a finite one counted as the worst final FID of the sweep "
             f"({cap:.3g}); probability of improvement: the chance that the arm's final FID is lower than "
             f"{labels[reference]}'s in a cell, averaged over cells (both rliable, stratified). Verdict, fixed before "
             "the runs: an arm *widens the region where training works* when the interval of its difference lies "
             f"wholly above 0 and the sign test gives p < {SIGNIFICANCE:g}, *narrows it* when the interval lies wholly "
             f"below 0 and p < {SIGNIFICANCE:g}, else *cannot tell*.", "",
             "| arm | mean success rate | difference from reference | seeds better / worse (sign test p) | "
             "IQM final FID | P(lower FID than reference) | verdict |", "|---|---|---|---|---|---|---|"]
    for arm in arms:
        name = arm.name
        d = diff.get(name)
        row = [labels[name], _interval(rate[name][0], rate_ci[name][:, 0]),
               "(reference)" if d is None else _interval(d["mean"], d["interval"], "+.2f"),
               "–" if d is None else f"{d['better']} / {d['worse']} ({d['p']:.3g})",
               _interval(iqm[name][0], iqm_ci[name][:, 0], ".3g"),
               "–" if name == reference else _interval(poi[name][0], poi_ci[name][:, 0])]
        verdict = "–" if d is None else d["verdict"]
        lines.append("| " + " | ".join(row + [verdict]) + " |")
    return lines + [""]


def write_map(out: Path, cells, arms, seeds, ok, reference, labels, map_axes: list[str]) -> None:
    """``map.png``: per arm, the success rate over one or two axes (pooled over the others), k/n in each
    square; below, each arm's rate minus the reference's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = _levels(cells, map_axes[0])
    ys = _levels(cells, map_axes[1]) if len(map_axes) > 1 else [None]

    def counts(arm: str, x, y) -> tuple[int, int]:
        chosen = [c for c in cells if dict(c.values)[map_axes[0]] == x
                  and (y is None or dict(c.values)[map_axes[1]] == y)]
        done = [(c, s) for c in chosen for s in seeds if (c, arm, s) in ok]
        return sum(ok[c, arm, s] for c, s in done), len(done)

    others = [a for a in arms if a.name != reference]
    rows = 2 if others else 1
    fig, grid = plt.subplots(rows, len(arms), figsize=(2.2 + 1.1 * len(xs) * len(arms), 1.2 + 1.3 * len(ys) * rows),
                             squeeze=False, constrained_layout=True)
    for j, arm in enumerate(arms):
        rate = np.full((len(ys), len(xs)), np.nan)
        ax = grid[0][j]
        for iy, y in enumerate(ys):
            for ix, x in enumerate(xs):
                k, n = counts(arm.name, x, y)
                if n:
                    rate[iy, ix] = k / n
                    ax.text(ix, iy, f"{k}/{n}", ha="center", va="center", fontsize=9,
                            color="white" if k / n < 0.35 or k / n > 0.8 else "black")
        image = ax.imshow(rate, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        _label(ax, xs, ys, map_axes, f"{labels[arm.name]}: trains")
    fig.colorbar(image, ax=grid[0].tolist(), label="success rate", shrink=0.9)
    if others:
        for j in range(len(arms)):
            grid[1][j].axis("off")
        for j, arm in enumerate(others):
            ax = grid[1][j]
            ax.axis("on")
            delta = np.full((len(ys), len(xs)), np.nan)
            for iy, y in enumerate(ys):
                for ix, x in enumerate(xs):
                    (k, n), (kr, nr) = counts(arm.name, x, y), counts(reference, x, y)
                    if n and nr:
                        delta[iy, ix] = k / n - kr / nr
                        ax.text(ix, iy, f"{k / n - kr / nr:+.2f}", ha="center", va="center", fontsize=9)
            shown = ax.imshow(delta, vmin=-1, vmax=1, cmap="RdBu", origin="lower", aspect="auto")
            _label(ax, xs, ys, map_axes, f"{labels[arm.name]} − {labels[reference]}")
        fig.colorbar(shown, ax=grid[1].tolist(), label="difference in success rate", shrink=0.9)
    save_figure(fig, out / "map.png", dpi=110)
    plt.close(fig)


def _levels(cells, axis: str) -> list:
    seen = []
    for cell in cells:
        value = dict(cell.values)[axis]
        if value not in seen:
            seen.append(value)
    return seen


def _label(ax, xs, ys, map_axes, title: str) -> None:
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_xlabel(map_axes[0])
    if ys == [None]:
        ax.set_yticks([])
    else:
        ax.set_yticks(range(len(ys)), [str(y) for y in ys])
        ax.set_ylabel(map_axes[1])
    ax.set_title(title, fontsize=9)
