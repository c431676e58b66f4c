"""Paired statistics of a comparison, checked against hand computations."""
import math

import pytest
from scipy import stats

from tempered_gan.studies.compare_report import RunResult, paired_rows, summarise, write_report
from tempered_gan.studies.statistics import CONVERGED, DIVERGING, IMPROVING, TOO_SHORT, paired, trend, wilson

T_975_DF2 = 4.302652729911275     # Student t, 97.5 % quantile, 2, 3 and 4 degrees of freedom (tables)
T_975_DF3 = 3.182446305284263
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


def test_trend_by_hand_on_a_flat_series_with_a_few_per_cent_of_scatter():
    ys = [50.0, 51.5, 49.2, 50.8, 49.5]                          # ± 2-3 %, no trend
    t = trend([400.0, 120.0, *ys])                               # only the last five count
    mean = sum(ys) / 5
    slope = sum((x - 2) * (y - mean) for x, y in enumerate(ys)) / 10          # Sxx of 0..4 is 10
    residuals = [y - (mean + slope * (x - 2)) for x, y in enumerate(ys)]
    s = math.sqrt(sum(r * r for r in residuals) / 3)
    assert t.change == pytest.approx(4 * slope) and t.noise == pytest.approx(s)
    assert t.margin == pytest.approx(T_975_DF3 * s / math.sqrt(10) * 4)
    assert t.state == CONVERGED


def test_a_rising_fid_is_diverging_never_converged():
    assert trend([1.0, 1.1, 1.2, 1.3, 1.4, 1.5]).state == DIVERGING             # no scatter: any rise shows
    assert trend([100, 104, 107, 113, 115, 121]).state == DIVERGING             # rising through its scatter
    assert trend([100, 20, 30, 40, 50, 60]).state == DIVERGING                  # got worse after its best
    assert trend([100, 80, 60, 50, 40, 30]).state == IMPROVING
    assert trend([0.9, 0.8, 0.7, 0.6, 0.5], steps=[1000, 2000, 3000, 4000, 5000]).state == IMPROVING
    assert trend([5.0] * 5).state == CONVERGED                                   # flat and exact
    assert trend([100, 50, 49, 48]).state == TOO_SHORT
    assert trend([100, 50, 49, 48, 47, float("nan")]).state == DIVERGING
    assert trend([100, float("inf"), 49, 48, 47, 46]).state == DIVERGING


# Study A's plain run of seed 302 (rounded): best at the 8th evaluation, then a climb of 47
# over 32 evaluations, too slow for the last five to tell from their scatter.
SLOW_CLIMB = [407, 198, 175, 151, 128, 119, 110, 96, 112, 99, 104, 111, 106, 101, 114, 113, 118, 112, 114, 114,
              117, 122, 121, 118, 116, 120, 120, 121, 121, 127, 130, 130, 132, 132, 138, 135, 139, 142, 137, 143]


def test_a_slow_climb_since_the_best_is_diverging_though_the_last_window_looks_flat():
    last_five = trend(SLOW_CLIMB[-5:])
    assert last_five.state == CONVERGED and last_five.drift is None       # the window alone misses it
    t = trend(SLOW_CLIMB)
    assert t.state == DIVERGING and t.best_step == 7
    xs, ys = list(range(8, 40)), SLOW_CLIMB[8:]                          # every evaluation after the best
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    s = math.sqrt(sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys)) / (len(xs) - 2))
    assert t.drift == pytest.approx(slope * 31)
    assert t.drift_margin == pytest.approx(stats.t.ppf(0.975, len(xs) - 2) * s / math.sqrt(sxx) * 31)
    # The same climb, higher is better (e.g. modes): falling since the best is diverging too.
    assert trend([-v for v in SLOW_CLIMB], lower_is_better=False).state == DIVERGING


def test_a_long_flat_run_stays_converged_and_a_late_best_is_not_drift():
    wobble = [3.1, -2.4, 0.7, -1.9, 2.6, -0.3, 1.8, -2.8, 0.4, 2.2, -1.1, -0.6, 1.5, -2.0, 0.9]
    flat = [300, 150, 90, *[60 + w for w in wobble * 2]]                 # ± 5 %, no trend, best early
    t = trend(flat)
    assert t.state == CONVERGED and t.drift is not None and abs(t.drift) <= t.drift_margin
    improving = [300 - 8 * i + w for i, w in enumerate(wobble * 2)]       # best among the last: no drift to fit
    assert trend(improving).state == IMPROVING and trend(improving).drift is None


def test_the_rule_judges_against_the_noise_not_a_fixed_percentage():
    # The same 2 % fall over the window: hidden by a 5 % scatter, clear without scatter.
    assert trend([100, 105, 95.5, 104, 98]).state == CONVERGED
    assert trend([100, 99.5, 99, 98.5, 98]).state == IMPROVING


def test_nan_values_are_left_out_and_counted():
    p = paired({0: 10.0, 1: 12.0, 2: float("nan"), 3: 11.0}, {0: 9.0, 1: 10.0, 2: 8.0, 3: float("nan")},
               lower_is_better=False)
    assert p.seeds == [0, 1] and p.left_out == 2 and p.ties == 0 and (p.wins, p.losses) == (0, 2)


def test_equal_differences_give_no_zero_width_interval_but_the_sign_test():
    reference = {s: 10.0 for s in range(8)}
    p = paired(reference, {s: 9.0 for s in range(8)})              # −1 on every seed: sd = 0
    assert p.low is None and p.high is None
    assert p.verdict == "better (sign test)"                      # 8 of 8: two-sided p = 2/256
    five = paired({s: 10.0 for s in range(5)}, {s: 11.0 for s in range(5)})
    assert five.low is None and five.verdict == "cannot tell with 5 seeds"   # 5 of 5: p = 1/16
    assert paired({s: 1.0 for s in range(8)}, {s: 3.0 for s in range(8)}, lower_is_better=False).verdict \
        == "better (sign test)"


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
    assert row["last_step"] == 20


def test_a_nan_last_evaluation_fails_the_run_and_never_takes_an_earlier_fid():
    r = RunResult("none", 0, None, evals=[{"step": 10, "fid": 50.0, "modes": 9},
                                          {"step": 20, "fid": float("nan"), "modes": 3}])
    assert r.final_fid is None and r.best_fid == 50.0 and r.final("modes") is None
    assert r.trend.state == DIVERGING and not r.converged
    rows, _, _ = summarise([r, _result("none", 1, [60, 40])], ["none"], fail_factor=10.0)
    assert rows[0]["failed"].startswith("1/2") and rows[0]["final_fid"] == "40"
    (row,) = paired_rows([r, _result("none", 1, [60, 40]), _result("sine", 0, [55, 45]), _result("sine", 1, [50, 30])],
                         ["none", "sine"], "none")
    assert row["final_fid"].seeds == [1]                         # seed 0 has no final FID without the lens


def test_the_report_calls_rising_runs_diverging_and_never_at_convergence(tmp_path):
    from tempered_gan.config.train_config import TrainConfig
    base = TrainConfig(dataset="mixture-ring8", eval_every=10, steps=60, k=20)
    rising = {"none": [(60, 50, 52, 55, 58, 61), (70, 60, 62, 64, 67, 70)],
              "sine": [(60, 50, 53, 56, 59, 63), (70, 60, 63, 65, 68, 72)]}
    results = [_result(arm, s, f) for arm, per_seed in rising.items() for s, f in enumerate(per_seed)]
    for r in results:
        r.run_dir = tmp_path / f"{r.arm}-{r.seed}"
    report = write_report(results, list(rising), tmp_path, command="test", base=base, fail_factor=10.0).read_text()
    assert "at convergence" not in report and "at equal steps (step 60)" in report
    assert "| 0 / 0 / 2 |" in report                             # converged / improving / diverging per arm
    assert report.count("| diverging |") == 4


def test_the_report_calls_a_slow_climb_diverging_and_shows_its_line_since_the_best(tmp_path):
    from tempered_gan.config.train_config import TrainConfig
    base = TrainConfig(dataset="mixture-ring8", eval_every=10, steps=400, k=20)
    flat = [300, 150, 90, *[60 + w for w in [3.1, -2.4, 0.7, -1.9, 2.6, -0.3, 1.8, -2.8, 0.4, 2.2, -1.1, -0.6]] * 3]
    results = [_result("none", 0, SLOW_CLIMB), _result("sine", 0, flat[:40])]
    for r in results:
        r.run_dir = tmp_path / f"{r.arm}-{r.seed}"
    report = write_report(results, ["none", "sine"], tmp_path, command="test", base=base, fail_factor=10.0).read_text()
    assert "| 0 / 0 / 1 |" in report and "| 1 / 0 / 0 |" in report   # converged / improving / diverging per arm
    assert "at convergence" not in report
    (climb,) = [line for line in report.splitlines() if line.startswith("| no ") and "| 400 |" in line]
    assert "(80): +" in climb and climb.endswith("| diverging |")   # the best was at step 80 (8th evaluation)


def test_the_report_leaves_out_nan_modes_and_counts_them(tmp_path):
    from tempered_gan.config.train_config import TrainConfig
    base = TrainConfig(dataset="mixture-ring8", eval_every=10, steps=20, k=10)
    results = [_result("none", 0, [60, 50], modes=6), _result("none", 1, [60, 50], modes=float("nan")),
               _result("sine", 0, [60, 40], modes=8), _result("sine", 1, [60, 40], modes=8)]
    for r in results:
        r.run_dir = tmp_path / f"{r.arm}-{r.seed}"
    report = write_report(results, ["none", "sine"], tmp_path, command="test", base=base, fail_factor=10.0).read_text()
    modes_row = next(line for line in report.splitlines() if line.startswith("| sine lens | at equal steps")
                     and "NaN left out" in line)
    assert "| 1 |" in modes_row and "s0 +2" in modes_row and "(1 NaN left out)" in modes_row


def test_failures_by_fid_and_by_modes():
    results = [_result("none", s, [0.5, 0.4], modes=m) for s, m in enumerate((25, 19, 24))]
    rows, threshold, _ = summarise(results, ["none"], fail_factor=2.0, fail_fid=1.0, fail_modes=20)
    assert threshold == 1.0 and rows[0]["failed"].startswith("1/3 (33 %;")
    rows, _, _ = summarise(results, ["none"], fail_factor=2.0, fail_fid=0.35, fail_modes=20)
    assert rows[0]["failed"].startswith("3/3")


def test_report_shows_the_hand_computed_interval_and_verdict(tmp_path):
    from tempered_gan.config.train_config import TrainConfig
    base = TrainConfig(dataset="mixture-ring8", eval_every=10, steps=40, k=20)
    fids = {"none": [(60, 50, 50, 50, 50, 50), (70, 60, 60, 60, 60, 60), (80, 70, 70, 70, 70, 70)],  # converged
            "sine:k=10": [(60, 47, 47, 47, 47, 47), (70, 59, 59, 59, 59, 59), (80, 68, 68, 68, 68, 68)]}
    results = [_result(arm, s, f) for arm, per_seed in fids.items() for s, f in enumerate(per_seed)]
    for r in results:
        r.run_dir = tmp_path / f"{r.arm}-{r.seed}"
    report = write_report(results, list(fids), tmp_path, command="test", base=base, fail_factor=2.0).read_text()
    half = T_975_DF2 / math.sqrt(3)
    row = next(line for line in report.splitlines() if line.startswith("| sine lens (k = 10) | at convergence | 3 |"))
    assert f"-2 [{-2 - half:+.3g}, {-2 + half:+.3g}]" in row and "| 3/0 |" in row and "cannot tell with 3 seeds" in row
    assert "s0 -3, s1 -1, s2 -2" in row
    assert "`sine:k=10`: k = 10" in report                      # the variant's options are in the report


def test_differences_equal_up_to_rounding_give_no_interval_either():
    p = paired({1: .2, 2: .3, 3: .5}, {1: .3, 2: .4, 3: .6})      # +0.1 each, but for the last bits
    assert p.low is None and p.verdict == "cannot tell with 3 seeds"
    assert trend([1, 2, 3, 4, 5], steps=[10] * 5).state == TOO_SHORT


def test_runs_ending_at_different_steps_are_not_called_equal_steps(tmp_path):
    from tempered_gan.config.train_config import TrainConfig
    base = TrainConfig(dataset="mixture-ring8", eval_every=10, steps=60, k=20)
    results = [_result("none", 0, [60, 50, 52]), _result("sine", 0, [60, 50, 53, 56, 59, 63])]
    results.append(RunResult("sine", 1, None, evals=[{"step": 10, "fid": 9.0}], failure="a loss became NaN at step 12"))
    results.append(_result("none", 1, [70, 60]))
    for r in results:
        r.run_dir = tmp_path / f"{r.arm}-{r.seed}"
    report = write_report(results, ["none", "sine"], tmp_path, command="test", base=base, fail_factor=10.0).read_text()
    assert "| sine lens | at unequal steps (10–60) |" in report and "| sine lens | at equal steps" not in report
    failed_row = next(line for line in report.splitlines() if line.startswith("| sine lens | 1 | 10 |"))
    assert "| – |" in failed_row and "9" not in failed_row.split("|")[4]     # no final FID from an earlier evaluation
