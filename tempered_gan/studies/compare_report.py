"""The report of a comparison: ``OUT/report.md`` and its figures, read from the run folders.

For each arm: best and final FID over seeds, failures with a Wilson interval,
convergence, mode coverage. Then every arm against the reference arm seed by
seed (:mod:`tempered_gan.studies.statistics`): per-seed differences of final and best FID
(and of modes and KL where the data set defines modes), their mean with a 95 %
interval, wins and losses and a verdict. When not every run of two arms had
stopped improving, their comparison is labelled a comparison at equal steps.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from tempered_gan.config.train_config import TrainConfig
from tempered_gan.studies.arms import Arm, arm_colours, format_value, parse_arm, reference_arm
from tempered_gan.studies.figures import write_figures
from tempered_gan.studies.statistics import (
    CONFIDENCE,
    CONVERGED,
    CONVERGENCE_WINDOW,
    DIVERGING,
    IMPROVING,
    TOO_SHORT,
    Paired,
    Trend,
    format_interval,
    format_rate,
    paired,
    sign_test,
    trend,
)
from tempered_gan.util.atomic_files import atomic_write_bytes


@dataclass
class RunResult:
    arm: str
    seed: int
    run_dir: Path
    evals: list[dict] = field(default_factory=list)     # metrics.jsonl lines with "fid"
    logs: list[dict] = field(default_factory=list)      # metrics.jsonl lines with losses
    failure: str | None = None                          # why the run stopped early, if it did

    @property
    def fids(self) -> list[tuple[int, float]]:
        """(step, FID) of every evaluation that has a FID, NaN and Inf included."""
        return [(e["step"], float(e["fid"])) for e in self.evals if e.get("fid") is not None]

    @property
    def nonfinite_fid(self) -> bool:
        """An evaluation gave NaN or Inf: the run diverged, whatever came after."""
        return any(not math.isfinite(f) for _, f in self.fids)

    @property
    def failed_early(self) -> bool:
        """Stopped on a NaN/Inf loss or had a NaN/Inf evaluation: nothing at its end counts."""
        return bool(self.failure) or self.nonfinite_fid

    @property
    def best_fid(self) -> float | None:
        return min((f for _, f in self.fids if math.isfinite(f)), default=None)

    @property
    def final_fid(self) -> float | None:
        """The last evaluation's FID; None for a run that failed early (never an earlier FID)."""
        return self.fids[-1][1] if self.fids and not self.failed_early else None

    def final(self, key: str) -> float | None:
        """``key`` (modes, kl, high_quality) at the last evaluation; None for a run that failed
        early. May be NaN: :func:`tempered_gan.studies.statistics.paired` leaves such values out and counts them."""
        value = self.evals[-1].get(key) if self.evals and not self.failed_early else None
        return float(value) if value is not None else None

    def measure(self, key: str) -> float | None:
        """A paired measure: ``best_fid`` or ``final_fid``, else ``key`` at the last evaluation."""
        return getattr(self, key) if key.endswith("_fid") else self.final(key)

    @property
    def trend(self) -> Trend:
        """Converged, still improving or diverging (:func:`tempered_gan.studies.statistics.trend`);
        a run that failed early diverged."""
        if self.failed_early:
            return Trend(DIVERGING)
        steps, fids = zip(*self.fids) if self.fids else ((), ())
        return trend(list(fids), steps=list(steps))

    @property
    def converged(self) -> bool:
        return self.trend.state == CONVERGED


def read_run(arm: str, seed: int, run_dir: Path, failure: str | None) -> RunResult:
    from tempered_gan.training.run_log import METRICS, read_metrics
    result = RunResult(arm, seed, run_dir, failure=failure)
    for record in read_metrics(run_dir / METRICS) if (run_dir / METRICS).exists() else []:
        (result.evals if "fid" in record else result.logs).append(record)
    return result


def _arms(arms: "list[Arm | str]") -> list[Arm]:
    return [parse_arm(a) if isinstance(a, str) else a for a in arms]


def _baseline_lines(arm_configs: dict[str, TrainConfig], labels: dict[str, str]) -> list[str]:
    """What the baseline arms do: the fixed temperings' σ(t) = σ₀·λ(t) with their σ₀, ending at K; and the
    stabilisers of D each arm carries, alone or with a tempering."""
    parts = []
    for arm, cfg in arm_configs.items():
        if cfg.tempering == "noise":
            parts.append(f"{labels[arm]}: N(0, σ(t)²) added to both of D's inputs, σ₀ = {cfg.noise_sigma:g}")
        elif cfg.tempering == "blur":
            inputs = "real and generated images" if cfg.blur_both else "real images"
            parts.append(f"{labels[arm]}: {inputs} blurred by a Gaussian of σ(t) pixels, σ₀ = {cfg.blur_sigma:g} px, "
                         f"{cfg.schedule} schedule")
    lines = []
    if parts:
        ks = sorted({cfg.k for cfg in arm_configs.values() if cfg.tempering in ("noise", "blur")})
        lines.append(f"Baselines, σ(t) = σ₀·λ(t), gone after K = {', '.join(map(str, ks))}: " + "; ".join(parts) + ".")
    stabilisers = []
    for arm, cfg in arm_configs.items():
        carried = ([f"R1, γ/2·E‖∇D‖² at D's real input, γ = {cfg.r1_gamma:g} (Mescheder et al. 2018)"] if cfg.r1_gamma else [])
        carried += ["spectral normalisation of D (Miyato et al. 2018)"] if cfg.spectral_norm else []
        carried += [f"DiffAugment {cfg.diffaugment} on both of D's inputs (Zhao et al. 2020)"] if cfg.diffaugment else []
        if carried:
            stabilisers.append(f"{labels[arm]}: " + ", ".join(carried))
    if stabilisers:
        lines.append("Stabilisers of D: " + "; ".join(stabilisers) + ".")
    return lines


def _mean_std(values: list[float], digits: str = ".3g") -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:{digits}}"
    spread = ".0f" if digits == ".0f" else ".2g"
    return f"{statistics.mean(values):{digits}} ± {statistics.stdev(values):{spread}}"


def failure_threshold(results: list[RunResult], fail_factor: float, fail_fid: float | None) -> float:
    """Final FID above which a run counts as failed: ``fail_fid`` when given, else
    ``fail_factor`` × the best FID that any run of the comparison reached."""
    if fail_fid is not None:
        return fail_fid
    bests = [r.best_fid for r in results if r.best_fid is not None]
    return fail_factor * min(bests) if bests else math.inf


def is_failed(r: RunResult, threshold: float, fail_modes: int | None = None) -> bool:
    """Stopped on NaN/Inf (loss or evaluation), no final FID, final FID above ``threshold``,
    or (with ``fail_modes``) fewer modes than that at the last evaluation."""
    if r.failed_early or r.final_fid is None or r.final_fid > threshold:
        return True
    modes = r.final("modes")
    return fail_modes is not None and modes is not None and math.isfinite(modes) and modes < fail_modes


def summarise(results: list[RunResult], arms: "list[Arm | str]", fail_factor: float,
              fail_fid: float | None = None, fail_modes: int | None = None,
              reference: str | None = None) -> tuple[list[dict], float, float | None]:
    """One row per arm: best/final FID, steps to the reference arm's best, failures,
    convergence, coverage. The reference is the arm without tempering unless given."""
    arms = _arms(arms)
    names = [a.name for a in arms]
    reference = reference or reference_arm(arms)
    threshold = failure_threshold(results, fail_factor, fail_fid)
    baseline = [r.best_fid for r in results if r.arm == reference and r.best_fid is not None]
    target = statistics.mean(baseline) if baseline else None
    rows = []
    for arm in names:
        runs = [r for r in results if r.arm == arm]
        failed = [r for r in runs if is_failed(r, threshold, fail_modes)]
        reach = []
        for r in runs:
            hit = next((step for step, fid in r.fids if target is not None and fid <= target), None)
            if hit is not None:
                reach.append(hit)
        row = {
            "arm": arm, "seeds": len(runs),
            "best_fid": _mean_std([r.best_fid for r in runs if r.best_fid is not None]),
            "final_fid": _mean_std([r.final_fid for r in runs if r.final_fid is not None]),
            "reached": (f"{_mean_std([float(s) for s in reach], '.0f')} ({len(reach)}/{len(runs)} seeds)"
                        if target is not None else "–"),
            "failed": format_rate(len(failed), len(runs)),
            "converged": _trend_counts(runs),
        }
        collapsed = [r.final(PARTIAL_COLLAPSE) for r in runs]
        judged = [c for c in collapsed if c is not None and math.isfinite(c)]
        if judged:
            row[PARTIAL_COLLAPSE] = format_rate(int(sum(judged)), len(judged))
        for key in COLUMNS:
            values = [r.final(key) for r in runs if r.final(key) is not None]
            finite = [v for v in values if math.isfinite(v)]
            if values:
                left_out = len(values) - len(finite)
                row[key] = _mean_std(finite) + (f" ({left_out} NaN left out)" if left_out else "")
        rows.append(row)
    return rows, threshold, target


def _trend_counts(runs: list[RunResult]) -> str:
    """``c / i / d`` runs converged, still improving, diverging (and how many were too short)."""
    states = [r.trend.state for r in runs]
    text = " / ".join(str(states.count(s)) for s in (CONVERGED, IMPROVING, DIVERGING))
    return text + (f" ({states.count(TOO_SHORT)} too short)" if TOO_SHORT in states else "")


# Metrics compared seed by seed: key, label, lower is better.
# The per-arm columns after FID, as the table heads them (mean ± sd at the last evaluation).
COLUMNS = {"modes": "modes", "kl": "KL", "high_quality": "high-quality share", "precision": "precision",
           "recall": "recall", "density": "density", "coverage": "coverage", "channel_fid_r": "R-channel FID",
           "channel_fid_g": "G-channel FID", "channel_fid_b": "B-channel FID", "inception_score": "Inception Score"}
# A colour-stacked set's partial collapse at the last evaluation (tempered_gan.metrics.channels): a rate, not a mean.
PARTIAL_COLLAPSE = "partial_collapse"
PAIRED_METRICS = (("final_fid", "final FID", True), ("best_fid", "best FID", True), ("modes", "modes", False),
                  ("kl", "KL of the mode histogram", True), ("precision", "precision (k = 3)", False),
                  ("recall", "recall (k = 3)", False), ("density", "density (k = 5)", False),
                  ("coverage", "coverage (k = 5)", False), ("inception_score", "Inception Score", False))


def per_seed(runs: list[RunResult], key: str) -> dict[int, float]:
    """{seed: the measure ``key``} over the runs that have it (:meth:`RunResult.measure`)."""
    values = {r.seed: r.measure(key) for r in runs}
    return {s: v for s, v in values.items() if v is not None}


def paired_rows(results: list[RunResult], arms: "list[Arm | str]", reference: str) -> list[dict]:
    """For each arm but the reference: {metric key: :class:`Paired`} against the reference,
    seed by seed, plus whether every run of both arms converged (else: at equal steps)."""
    names = [a.name for a in _arms(arms)]
    ref_runs = [r for r in results if r.arm == reference]
    rows = []
    for arm in names:
        if arm == reference:
            continue
        runs = [r for r in results if r.arm == arm]
        both = runs + ref_runs
        last = [r.fids[-1][0] for r in both if r.fids]
        row = {"arm": arm, "converged": bool(both) and all(r.converged for r in both),
               "last_step": max(last, default=0), "first_last_step": min(last, default=0)}
        for key, _, lower in PAIRED_METRICS:
            ref, mine = per_seed(ref_runs, key), per_seed(runs, key)
            if ref and mine:
                row[key] = paired(ref, mine, lower_is_better=lower)
        rows.append(row)
    return rows


def _paired_cell(p: Paired | None) -> list[str]:
    if p is None:
        return ["–", "–", "–"]
    return [format_interval(p), f"{p.wins}/{p.losses}" + (f" ({p.ties} tied)" if p.ties else ""), p.verdict]


def write_report(results: list[RunResult], arms: "list[Arm | str]", out: Path, *, command: str, base: TrainConfig,
                 fail_factor: float, fail_fid: float | None = None, fail_modes: int | None = None,
                 reference: str | None = None, arm_configs: dict[str, TrainConfig] | None = None) -> Path:
    arms = _arms(arms)
    names = [a.name for a in arms]
    reference = reference or reference_arm(arms)
    labels = {a.name: a.label for a in arms}
    colours = arm_colours(arms)
    feature, strips, modes_figure = write_figures(results, arms, out, labels, colours)

    rows, threshold, target = summarise(results, arms, fail_factor, fail_fid, fail_modes, reference)
    extra = [k for k in (PARTIAL_COLLAPSE, *COLUMNS) if any(k in row for row in rows)]
    header = ["arm", "seeds", "best FID", "final FID", "step reaching reference best", "failed (95 % CI)",
              "converged / improving / diverging",
              *("partly collapsed (95 % CI)" if k == PARTIAL_COLLAPSE else COLUMNS[k] for k in extra)]
    seeds = sorted({r.seed for r in results})
    lines = [
        f"# Comparison: {base.dataset}, {base.loss}",
        "",
        f"Arms: {', '.join(labels[a] for a in names)}; seeds: {', '.join(str(s) for s in seeds)}. "
        "For each seed all arms start from the same G and D weights, data order and noise.",
        f"FID: {feature}, {base.fid_samples} generated samples against the real data X, every {base.eval_every} steps.",
        *_baseline_lines(arm_configs or {}, labels),
    ]
    variants = [a for a in arms if a.overrides]
    if variants:
        described = [f"`{a.name}`: " + ", ".join(f"{k} = {format_value(v)}" for k, v in a.overrides) for a in variants]
        lines.append("Arm variants (options that differ from the arm's defaults): " + "; ".join(described) + ".")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [labels[row["arm"]], str(row["seeds"]), row["best_fid"], row["final_fid"], row["reached"],
                 row["failed"], row["converged"]]
        lines.append("| " + " | ".join(cells + [row.get(k, "–") for k in extra]) + " |")
    failure_rule = ("a run counts as failed when it stopped on a NaN/Inf loss, had a NaN/Inf FID, has no "
                    "evaluation, or its final FID exceeds "
                    + (f"{threshold:.3g} (--fail-fid)" if fail_fid is not None else
                       f"{fail_factor:g} × the best FID of any run here ({threshold:.3g}; --fail-factor, or set --fail-fid)")
                    + (f", or it covers fewer than {fail_modes} modes at the end (--fail-modes)" if fail_modes else ""))
    lines += [
        "",
        "Best and final FID, modes, KL, high-quality share, precision and recall (k = 3), density and coverage "
        "(k = 5, on FID's features): mean ± standard deviation over seeds, at the last evaluation. "
        + (f"'Step reaching reference best': first evaluation at which a run's FID was at most the mean best FID of "
           f"{labels[reference]} ({target:.3g}), mean over the seeds that reached it. " if target is not None else "")
        + f"Failed: {failure_rule}; the interval is Wilson's. "
        + (PARTIAL_COLLAPSE_RULE if PARTIAL_COLLAPSE in extra else "") + CONVERGENCE_RULE,
        "",
    ]
    for r in results:
        if r.failure:
            lines.append(f"- {labels[r.arm]}, seed {r.seed}: {r.failure}")
        elif r.nonfinite_fid:
            step = next(step for step, f in r.fids if not math.isfinite(f))
            lines.append(f"- {labels[r.arm]}, seed {r.seed}: FID was not finite at step {step} (diverged)")
    lines += _trend_section(results, names, labels)
    lines += _paired_section(results, arms, reference, labels)
    lines += _collapse_section(results, arms, reference, labels)
    lines += ["![FID against step](fid.png)", ""]
    if modes_figure:
        lines += ["![modes against step](modes.png)", ""]
    lines += ["![λ and lens reconstruction](lens.png)", ""]
    if strips:
        lines += ["![samples](samples.png)", ""]
    lines += ["## How this was produced", "", "```", command, "```", "", "Configuration of the first run "
              "(other runs differ only in `seed` and their arm's tempering options: `tempering`, `schedule`, "
              "`lambda_value`, `lens_exit`, `lens_zero_init`, `noise_sigma`, `blur_sigma`, `r1_gamma`, and a variant's "
              "overrides):",
              "", "```json", base.to_json(), "```", ""]
    report = out / "report.md"
    atomic_write_bytes(report, "\n".join(lines).encode())
    return report


PARTIAL_COLLAPSE_RULE = (
    "Partly collapsed: at the last evaluation at least one colour channel is like the grey data and at least one is "
    "not; a channel is like the data when its own classifier FID against the grey set (R-, G-, B-channel FID) is at "
    "most the FID of a perfect sampler of half the classes, measured from real data (docs/METRICS.md); the interval "
    "is Wilson's. ")


def _collapse_section(results: list[RunResult], arms: list[Arm], reference: str, labels: dict) -> list[str]:
    """Partial collapse at the end, each arm against the reference seed by seed: discordant seeds, exact test."""
    collapsed = {(r.arm, r.seed): r.final(PARTIAL_COLLAPSE) for r in results}
    collapsed = {k: bool(v) for k, v in collapsed.items() if v is not None and math.isfinite(v)}
    if not collapsed:
        return []
    rows = []
    for arm in (a.name for a in arms if a.name != reference):
        seeds = sorted(s for a, s in collapsed if a == arm and (reference, s) in collapsed)
        if not seeds:
            continue
        mine = [collapsed[arm, s] for s in seeds]
        ref = [collapsed[reference, s] for s in seeds]
        arm_only = sum(m and not r for m, r in zip(mine, ref))
        ref_only = sum(r and not m for m, r in zip(mine, ref))
        rows.append(f"| {labels[arm]} | {len(seeds)} | {sum(mine)} / {sum(ref)} | {arm_only} / {ref_only} | "
                    f"{sign_test(arm_only, ref_only):.3g} |")
    if not rows:
        return []
    return [f"**Partly collapsed at the end, against {labels[reference]}**", "",
            "Over the seeds where both runs were judged: *arm only* counts the seeds on which the arm's run partly "
            "collapsed and the reference's did not, *reference only* the reverse; p is the exact two-sided binomial "
            "(McNemar) test of those discordant seeds.", "",
            "| arm | seeds | partly collapsed: arm / reference | arm only / reference only | McNemar p |",
            "|---|---|---|---|---|", *rows, ""]


CONVERGENCE_RULE = (
    f"Converged / improving / diverging: a straight line is fitted through each run's last {CONVERGENCE_WINDOW} "
    "FIDs; its change over those evaluations is compared with what their scatter about the line allows (the 95 % "
    "t interval of the slope). Within it the run has *converged* (no trend its evaluations can tell from their own "
    "noise); beyond it, falling: *still improving*, rising: *diverging*. A drift slower than that window's noise is "
    "caught by a second line, through every FID after the run's best (when at least "
    f"{CONVERGENCE_WINDOW} follow it): a run whose FID has risen since its best by more than that line's margin is "
    "*diverging*, not converged. A NaN or infinite FID or loss counts as diverging and as failed. The scatter is the "
    "evaluation's noise plus G's wander between evaluations; each run's change, noise and margins are in the table "
    "below.")


def _trend_section(results: list[RunResult], names: list[str], labels: dict) -> list[str]:
    """Each run's trend over its last evaluations: change, noise (scatter), margin and state."""
    lines = ["", f"**Trend of each run over its last {CONVERGENCE_WINDOW} evaluations** (FID units; noise: the sd "
             "of those FIDs about their fitted line)", "",
             "| arm | seed | last step | final FID | change | noise | margin (95 %) | since best (step): change / margin "
             "| state |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm in names:
        for r in sorted((x for x in results if x.arm == arm), key=lambda x: x.seed):
            t = r.trend
            cells = ([f"{t.change:+.3g}", f"{t.noise:.3g}", f"{t.margin:.3g}"] if t.change is not None else ["–"] * 3)
            cells.append(f"({t.best_step:.0f}): {t.drift:+.3g} / {t.drift_margin:.3g}" if t.drift is not None else "–")
            last = str(r.fids[-1][0]) if r.fids else "–"
            final = f"{r.final_fid:.4g}" if r.final_fid is not None else "–"
            lines.append("| " + " | ".join([labels[arm], str(r.seed), last, final, *cells, t.state]) + " |")
    return lines + [""]


def _paired_section(results: list[RunResult], arms: list[Arm], reference: str, labels: dict) -> list[str]:
    """One table per metric: each arm against the reference, seed by seed."""
    rows = paired_rows(results, arms, reference)
    if not rows:
        return []
    lines = [
        f"## Seed by seed against {labels[reference]}",
        "",
        f"Δ = arm − {labels[reference]} on the same seed (same initial weights, batches and noise), over the seeds "
        f"where both runs have the value; mean with a {100 * CONFIDENCE:g} % Student-t interval. Wins/losses: seeds "
        "on which the arm was better/worse (lower FID and KL; more modes, precision, recall, density and coverage). "
        "The verdict says better or worse only when "
        "the whole interval lies on one side of 0; when every per-seed difference is the same (no spread, no "
        "interval) it comes from the two-sided sign test instead. Seeds where either value is NaN are left out and "
        "counted. 'At convergence' when every run of both arms had converged by the rule above, else 'at equal "
        "steps (step N)': some run was still improving, diverging or too short, so the comparison holds at that "
        "step count only.",
        "",
    ]
    for key, name, _ in PAIRED_METRICS:
        if not any(key in row for row in rows):
            continue
        lines += [f"**{name}**", "", "| arm | compared | seeds | mean Δ [95 % CI] | wins/losses | verdict | Δ per seed |",
                  "|---|---|---|---|---|---|---|"]
        for row in rows:
            p = row.get(key)
            if p is None:
                continue
            per_seed = ", ".join(f"s{s} {d:+.3g}" for s, d in zip(p.seeds, p.differences))
            if p.left_out:
                per_seed += f" ({p.left_out} NaN left out)"
            compared = ("at convergence" if row["converged"] else
                        f"at equal steps (step {row['last_step']})" if row["first_last_step"] == row["last_step"] else
                        f"at unequal steps ({row['first_last_step']}–{row['last_step']})")
            lines.append("| " + " | ".join([labels[row["arm"]], compared, str(p.n), *_paired_cell(p), per_seed]) + " |")
        lines.append("")
    return lines
