"""Paired statistics of a comparison, checked against hand computations."""
import math

import pytest

from tempered_gan.paired import converged, paired, wilson
from tempered_gan.report import RunResult, paired_rows, summarise, write_report

T_975_DF2 = 4.302652729911275     # Student t, 97.5 % quantile, 2 and 4 degrees of freedom (tables)
T_975_DF4 = 2.7764451051977987
Z_975 = 1.959963984540054


def test_paired_differences_interval_and_verdict_by_hand():
    reference = {0: 10.0, 1: 20.0, 2: 30.0, 7: 5.0}          # seed 7 has no partner: left out
    arm = {0: 7.0, 1: 19.0, 2: 28.0, 9: 1.0}
    p = paired(reference, arm)
    assert p.seeds == [0, 1, 2] and p.differences == [-3.0, -1.0, -2.0]
    half = T_975_DF2 * 1.0 / math.sqrt(3)                      # sd of (−3, −1, −2) is 1
    assert p.mean == pytest.approx(-2.0) and p.low == pytest.approx(-2 - half) and p.high == pytest.approx(-2 + half)
    assert (p.wins, p.losses, p.ties) == (3, 0, 0)
    assert p.verdict == "cannot tell with 3 seeds"             # 3 wins of 3, but the interval reaches above 0


def test_a_consistent_difference_is_better_for_fid_and_worse_for_modes():
    diffs = [-3.0, -2.5, -2.0, -2.5, -3.0]
    reference = {s: 50.0 for s in range(5)}
    arm = {s: 50.0 + d for s, d in enumerate(diffs)}
    sd = math.sqrt(sum((d + 2.6) ** 2 for d in diffs) / 4)
    half = T_975_DF4 * sd / math.sqrt(5)
    p = paired(reference, arm)
    assert (p.low, p.high) == (pytest.approx(-2.6 - half), pytest.approx(-2.6 + half))
    assert p.high < 0 and p.verdict == "better" and (p.wins, p.losses) == (5, 0)
    modes = paired(reference, arm, lower_is_better=False)       # fewer modes is worse
    assert modes.verdict == "worse" and (modes.wins, modes.losses) == (0, 5)
    assert paired(arm, reference).verdict == "worse"            # the other way round


def test_one_seed_or_ties_give_no_verdict():
    one = paired({0: 1.0}, {0: 0.5})
    assert one.low is None and one.verdict == "cannot tell with 1 seed" and one.wins == 1
    tied = paired({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    assert tied.ties == 2 and tied.verdict == "cannot tell with 2 seeds"


def test_wilson_interval_by_hand():
    k, n = 1, 8
    p, z2 = k / n, Z_975 ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_975 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    assert wilson(k, n) == (pytest.approx(centre - half), pytest.approx(centre + half))
    low, high = wilson(0, 5)
    assert low == pytest.approx(0, abs=1e-12) and high == pytest.approx(z2 / (5 + z2))
    assert wilson(0, 0) is None


def test_converged_means_the_last_evaluations_stopped_improving():
    assert converged([100, 50, 40, 39, 38.5, 38.2])              # best before: 40; last three ≥ 38
    assert not converged([100, 80, 60, 50, 40, 30])              # still falling
    assert converged([100, 20, 30, 40, 50])                      # got worse: it stopped improving too
    assert not converged([100, 50, 49])                          # too few evaluations to tell
    assert converged([0.9, 0.8, 0.79, 0.8], window=2) and not converged([0.9, 0.8, 0.7], window=2)


def _result(arm, seed, fids, failure=None, modes=None):
    evals = [{"step": 10 * (i + 1), "fid": f, **({"modes": modes} if modes is not None else {})}
             for i, f in enumerate(fids)]
    return RunResult(arm, seed, None, evals=evals, failure=failure)


def test_paired_rows_pair_seeds_and_leave_out_runs_that_stopped():
    results = [_result("none", 0, [60, 50]), _result("none", 1, [70, 65]), _result("none", 2, [80, 75]),
               _result("sine", 0, [55, 40]), _result("sine", 1, [60, 70]), _result("sine", 2, [90, 95], failure="NaN")]
    (row,) = paired_rows(results, ["none", "sine"], "none")
    assert row["final_fid"].seeds == [0, 1] and row["final_fid"].differences == [-10, 5]
    assert row["best_fid"].seeds == [0, 1, 2] and row["best_fid"].differences == [-10, -5, 15]
    assert row["converged"] is False                             # two evaluations cannot show convergence


def test_failures_by_fid_and_by_modes():
    results = [_result("none", s, [0.5, 0.4], modes=m) for s, m in enumerate((25, 19, 24))]
    rows, threshold, _ = summarise(results, ["none"], fail_factor=2.0, fail_fid=1.0, fail_modes=20)
    assert threshold == 1.0 and rows[0]["failed"].startswith("1/3 (33 %;")
    rows, _, _ = summarise(results, ["none"], fail_factor=2.0, fail_fid=0.35, fail_modes=20)
    assert rows[0]["failed"].startswith("3/3")


def test_report_shows_the_hand_computed_interval_and_verdict(tmp_path):
    from tempered_gan.config import TrainConfig
    base = TrainConfig(dataset="mixture-ring8", eval_every=10, steps=40, k=20)
    fids = {"none": [(60, 50, 50, 50, 50), (70, 60, 60, 60, 60), (80, 70, 70, 70, 70)],          # converged
            "sine:k=10": [(60, 47, 47, 47, 47), (70, 59, 59, 59, 59), (80, 68, 68, 68, 68)]}
    results = [_result(arm, s, f) for arm, per_seed in fids.items() for s, f in enumerate(per_seed)]
    for r in results:
        r.run_dir = tmp_path / f"{r.arm}-{r.seed}"
    report = write_report(results, list(fids), tmp_path, command="test", base=base, fail_factor=2.0).read_text()
    half = T_975_DF2 / math.sqrt(3)
    row = next(line for line in report.splitlines() if line.startswith("| sine lens (k = 10) | at convergence | 3 |"))
    assert f"-2 [{-2 - half:+.3g}, {-2 + half:+.3g}]" in row and "| 3/0 |" in row and "cannot tell with 3 seeds" in row
    assert "s0 -3, s1 -1, s2 -2" in row
    assert "`sine:k=10`: k = 10" in report                      # the variant's options are in the report
