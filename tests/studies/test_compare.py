"""compare, eval and sample through the command line, on the 2-D mixture at tiny size."""
import json
import math
import shutil

import pytest
import torch
from helpers import TINY_POINTS_ARGS

from tempered_gan.cli.main import main
from tempered_gan.studies.compare_report import RunResult, summarise

TINY = ["--dataset", "mixture-ring8", *TINY_POINTS_ARGS,
        "--log-every", "2", "--eval-every", "2", "--fid-samples", "256", "--sample-every", "2", "--no-progress"]


# Plain arms and two variants: a variant is an arm of its own, with its own run folders.
ARMS = "none,sine,constant,noise,sine:k=3,noise:noise_sigma=0.5"
FOLDERS = ("none", "sine", "constant", "noise", "sine+k=3", "noise+noise_sigma=0.5")


def run(*argv):
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    assert run("compare", "--out", out, "--seeds", 2, "--arms", ARMS, "--steps", 4, "--k", 2, *TINY) == 0
    return out


def test_compare_writes_every_report_item(comparison):
    report = (comparison / "report.md").read_text()
    for figure in ("fid.png", "lens.png", "samples.png"):
        assert (comparison / figure).stat().st_size > 1000 and f"({figure})" in report
    for arm in ("no lens", "sine lens", "constant λ = 1", "instance noise"):
        assert f"| {arm} | 2 |" in report
    assert "instance noise: N(0, σ(t)²) added to both of D's inputs, σ₀ = 1" in report
    assert "best FID" in report and "final FID" in report and "step reaching reference best" in report
    assert "Seed by seed against no lens" in report
    assert "failed" in report and "modes" in report and "high-quality share" in report
    assert "high_quality" not in report.split("## How this was produced")[0]     # columns a person reads
    assert "| precision | recall | density | coverage |" in report and "**recall (k = 3)**" in report
    assert "tempered-gan compare --out" in report and '"dataset": "mixture-ring8"' in report
    first_eval = next(json.loads(x) for x in (comparison / "runs" / "none-s0" / "metrics.jsonl").read_text().splitlines()
                      if "fid" in json.loads(x))
    assert f"FID: {first_eval['features']}, 256 generated samples" in report   # which extractor, how many samples
    assert sorted(p.name for p in (comparison / "runs").iterdir()) == sorted(f"{f}-s{s}" for f in FOLDERS for s in (0, 1))
    for label in ("sine lens (k = 3)", "instance noise (noise_sigma = 0.5)"):
        assert f"| {label} | 2 |" in report                                   # the variants' rows ...
        assert f"| {label} | at equal steps (step 4) | 2 |" in report         # ... and their paired comparisons


def test_arms_of_a_seed_start_from_identical_weights(comparison):
    from tempered_gan.config.train_config import TrainConfig
    from tempered_gan.training.factories import build_nets
    nets = {}
    for arm in FOLDERS:
        cfg = TrainConfig.load(comparison / "runs" / f"{arm}-s1" / "config.json")
        G, D, _ = build_nets(cfg, (2,))
        nets[arm] = [p for net in (G, D) for p in net.parameters()]
    for arm in FOLDERS[1:]:
        assert all(torch.equal(a, b) for a, b in zip(nets["none"], nets[arm])), arm


def test_a_variant_s_override_reaches_its_saved_config_and_nothing_else(comparison):
    from tempered_gan.config.train_config import TrainConfig
    saved = {arm: TrainConfig.load(comparison / "runs" / f"{arm}-s0" / "config.json") for arm in FOLDERS}
    assert (saved["sine"].k, saved["sine+k=3"].k) == (2, 3)
    assert (saved["noise"].noise_sigma, saved["noise+noise_sigma=0.5"].noise_sigma) == (1.0, 0.5)
    for variant, plain in (("sine+k=3", "sine"), ("noise+noise_sigma=0.5", "noise")):
        differ = {k for k, v in vars(saved[variant]).items() if v != getattr(saved[plain], k)}
        assert differ == {"k" if plain == "sine" else "noise_sigma"}
    # The variant trains differently after its own K: λ is logged per step.
    lam = {arm: [json.loads(x).get("lambda") for x in (comparison / "runs" / f"{arm}-s0" / "metrics.jsonl")
                 .read_text().splitlines() if "loss_d" in json.loads(x)] for arm in ("sine", "sine+k=3")}
    assert lam["sine"][0] == pytest.approx(1 - math.sin(2 * math.pi / 4))          # λ(2) with K = 2
    assert lam["sine+k=3"][0] == pytest.approx(1 - math.sin(2 * math.pi / 6))      # λ(2) with K = 3


def test_rerunning_compare_skips_finished_runs_and_resumes_longer_ones(comparison):
    ckpt = comparison / "runs" / "sine-s0" / "checkpoint.pt"
    before = ckpt.stat().st_mtime_ns
    assert run("compare", "--out", comparison, "--seeds", 2, "--arms", ARMS, "--steps", 4, "--k", 2,
               *TINY) == 0
    assert ckpt.stat().st_mtime_ns == before                          # finished: skipped
    assert run("compare", "--out", comparison, "--seeds", 2, "--arms", ARMS, "--steps", 6, "--k", 2,
               *TINY) == 0
    assert torch.load(ckpt, weights_only=True)["step"] == 6           # resumed from 4, not restarted
    steps = [json.loads(x)["step"] for x in (ckpt.parent / "metrics.jsonl").read_text().splitlines()
             if "loss_d" in json.loads(x)]
    assert steps == [2, 4, 6]


def test_compare_reads_a_run_whose_metrics_end_in_a_torn_line(comparison, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(comparison, copy)
    metrics = copy / "runs" / "sine-s1" / "metrics.jsonl"
    lines = metrics.read_text()
    metrics.write_text(lines + '{"step": 6, "lambda": 0.0, "lo')                 # a run died while appending
    capsys.readouterr()
    assert run("compare", "--out", copy, "--seeds", 2, "--arms", "none,sine,constant", "--steps", 4, "--k", 2,
               *TINY) == 0                                                        # every run is finished: report only
    err = capsys.readouterr().err
    assert "dropped a torn last line" in err and "Traceback" not in err
    assert metrics.read_text().startswith(lines)                                  # compare never rewrites a run's log
    assert "| sine lens | 2 |" in (copy / "report.md").read_text()


def test_compare_refuses_a_folder_of_another_configuration(comparison, capsys):
    assert run("compare", "--out", comparison, "--seeds", 2, "--arms", ARMS, "--steps", 4, "--k", 4,
               *TINY) == 2
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--seeds", "5-3"], "the range ends before it starts"),
    (["--seeds", "1,1"], "names a seed twice"),
    (["--seeds", "x"], "--seeds takes N, A-B or a list"),
    (["--arms", "none,sine:foo=1"], "arm 'sine:foo=1': unknown option 'foo'"),
    (["--arms", "none,sine:noise_sigma=0.5"], "noise_sigma does not apply to the sine arm"),
    (["--arms", "none:k=5,sine"], "k does not apply to the none arm (it has no tempering options)"),
    (["--arms", "constant:k=5"], "k does not apply to the constant arm"),
    (["--arms", "noise:lens_width=4"], "lens_width does not apply to the noise arm"),
    (["--arms", "none,sine:k=abc"], "arm 'sine:k=abc': k must be a whole number, got 'abc'"),
    (["--arms", "none,sine:k"], "write each option as name=value"),
    (["--arms", "none,sine:k=1:k=2"], "k is given twice"),
    (["--arms", "none,noise:noise_sigma=-1"], "arm 'noise:noise_sigma=-1': --noise-sigma must be a finite number ≥ 0"),
    (["--arms", "none,noise:noise_sigma=nan"], "noise_sigma must be a finite number, got 'nan'"),
    (["--arms", "none,sine:k=0"], "arm 'sine:k=0': k must be a positive whole number"),
    (["--arms", "none,sine,none"], "names the arm 'none' twice"),
    (["--arms", "sine:k=5,sine:k=5"], "names the arm 'sine:k=5' twice"),
    (["--arms", "sine,sine:k=2", "--k", "2"], "arms 'sine' and 'sine:k=2' are the same run"),
    (["--arms", "none,sine", "--reference", "noise"], "--reference 'noise' is not one of the arms"),
    (["--fail-modes", "0"], "fail-modes must be a whole number ≥ 1"),
    (["--arms", "none,fog"], "unknown arm 'fog'"),
    (["--arms", "none,blur"], "--tempering blur blurs images; mixture-ring8 is 2-D points"),
    (["--schedule", "sine"], "compare sets the tempering per arm"),
    (["--tempering", "noise"], "compare sets the tempering per arm"),
    (["--arms", "none,sine", "--noise-sigma", "0.5"], "--noise-sigma is σ₀ of the noise arm, which --arms does not"),
    (["--arms", "none,noise", "--noise-sigma", "-1"], "--noise-sigma must be a finite number ≥ 0"),
    (["--seed", "3"], "choose them with --seeds"),
    (["--fail-factor", "nan"], "fail-factor must be at least 1 and finite, got nan"),
    (["--fail-factor", "0.5"], "fail-factor must be at least 1"),
    (["--fail-factor", "inf"], "fail-factor must be at least 1 and finite"),
    (["--fail-fid", "nan"], "fail-fid must be positive and finite, got nan"),
    (["--fail-fid", "-1"], "fail-fid must be positive and finite"),
    (["--fail-fid", "0"], "fail-fid must be positive"),
    (["--fail-fid", "inf"], "fail-fid must be positive and finite"),
    (["--lens-exit-tolerance", "nan"], "lens-exit-tolerance must be positive and finite"),
    (["--lr", "-1"], "lr must be positive"),
])
def test_compare_bad_options(tmp_path, capsys, argv, message):
    base = [a for a in TINY if a != "--no-progress"]
    assert run("compare", "--out", tmp_path / "c", "--steps", 2, *base, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "c").exists()                     # refused before anything was written


def test_arm_options_go_to_their_own_arms():
    from tempered_gan.config.train_config import TrainConfig
    from tempered_gan.studies.arms import arm_config
    base = TrainConfig(dataset="mnist", noise_sigma=0.3, blur_sigma=1.5, lens_exit="converge", lens_zero_init=True)
    noise, blur, sine = (arm_config(base, arm, 0) for arm in ("noise", "blur", "sine"))
    assert (noise.tempering, noise.noise_sigma, noise.blur_sigma, noise.lens_exit) == ("noise", 0.3, None, "drop")
    assert (blur.tempering, blur.blur_sigma, blur.noise_sigma, blur.lens_zero_init) == ("blur", 1.5, None, False)
    assert (sine.tempering, sine.noise_sigma, sine.blur_sigma, sine.lens_exit, sine.lens_zero_init) == \
        ("lens", None, None, "converge", True)


def test_r1_is_an_arm_with_its_own_gamma_and_no_other_arm_gets_it():
    from tempered_gan.config.train_config import TrainConfig
    from tempered_gan.errors import UserError
    from tempered_gan.studies.arms import R1_GAMMA, arm_config, parse_arm
    r1 = arm_config(TrainConfig(), "r1", 0)
    assert (r1.tempering, r1.r1_gamma) == ("none", R1_GAMMA)
    assert arm_config(TrainConfig(), "r1:r1_gamma=1", 0).r1_gamma == 1.0
    given = TrainConfig(r1_gamma=3.0)                     # --r1-gamma: γ of the r1 arm only
    assert arm_config(given, "r1", 0).r1_gamma == 3.0
    assert all(arm_config(given, arm, 0).r1_gamma == 0 for arm in ("none", "sine", "noise"))
    for bad, message in (("r1:k=5", "does not apply"), ("r1:r1_gamma=x", "finite number"), ("none:r1_gamma=1", "does not")):
        with pytest.raises(UserError, match=message):
            parse_arm(bad)


@pytest.mark.parametrize("tempering", ["sine", "noise", "blur"])
def test_a_tempering_with_r1_is_that_tempering_with_the_r1_arms_penalty_and_nothing_else(tempering):
    import dataclasses

    from tempered_gan.config.train_config import TrainConfig
    from tempered_gan.studies.arms import arm_config
    base = TrainConfig(dataset="mnist", r1_gamma=3.0)     # --r1-gamma belongs to the r1 arm, not to the combination
    both = arm_config(base, f"{tempering}:k=7:r1_gamma=10", 0)
    assert both == dataclasses.replace(arm_config(base, f"{tempering}:k=7", 0), r1_gamma=10.0)
    assert both.tempering == arm_config(base, tempering, 0).tempering != "none"


def test_r1_trains_as_an_arm_of_compare_and_the_report_names_it(tmp_path):
    out = tmp_path / "c"
    assert run("compare", "--out", out, "--seeds", 1, "--arms", "none,r1:r1_gamma=1", "--steps", 4, "--k", 2,
               *TINY) == 0
    report = (out / "report.md").read_text()
    assert "| R1 penalty (r1_gamma = 1) | 1 |" in report and "γ = 1" in report
    assert json.loads((out / "runs" / "r1+r1_gamma=1-s0" / "config.json").read_text())["r1_gamma"] == 1.0
    assert run("compare", "--out", tmp_path / "d", "--r1-gamma", 2, "--arms", "none,sine", *TINY) == 2


def test_report_names_the_baselines(tmp_path):
    from tempered_gan.config.train_config import TrainConfig
    from tempered_gan.studies.arms import arm_config
    from tempered_gan.studies.compare_report import write_report
    base = TrainConfig(dataset="mnist", eval_every=10, k=20, steps=40)
    configs = {arm: arm_config(base, arm, 0) for arm in ("none", "noise", "blur")}
    results = [RunResult(arm, 0, tmp_path / arm, evals=[{"step": 10, "fid": f, "features": "test"},
                                                          {"step": 20, "fid": f - 1, "features": "test"}])
               for arm, f in (("none", 30.0), ("noise", 25.0), ("blur", 20.0))]
    report = write_report(results, list(configs), tmp_path, command="tempered-gan compare …", base=configs["none"],
                          fail_factor=2.0, arm_configs=configs).read_text()
    assert "| instance noise | 1 |" in report and "| blurring lens | 1 |" in report
    assert "σ₀ = 1;" in report and "σ₀ = 2 px" in report and "gone after K = 20" in report
    assert (tmp_path / "fid.png").stat().st_size > 1000


def test_compare_evaluates_ten_times_per_run_unless_told_and_says_so(tmp_path, capsys):
    at = TINY.index("--eval-every")
    without = TINY[:at] + TINY[at + 2:]
    assert run("compare", "--out", tmp_path / "c", "--steps", 20, "--k", 10, "--seeds", 1, "--arms", "none",
               *without) == 0
    assert "FID every 2 steps (10 evaluations in 20 steps; choose with --eval-every N)" in capsys.readouterr().err
    metrics = (tmp_path / "c" / "runs" / "none-s0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in metrics if "fid" in json.loads(x)] == list(range(2, 21, 2))
    assert run("compare", "--out", tmp_path / "d", "--steps", 20, "--eval-every", 0, *without) == 2
    err = capsys.readouterr().err.strip()
    assert "--eval-every must be at least 1" in err and len(err.splitlines()) == 1 and not (tmp_path / "d").exists()


def test_eval_prints_one_json_object(comparison, capsys):
    assert run("eval", comparison / "runs" / "sine-s0", "--fid-samples", 300) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["samples"] == 300 and scores["fid"] >= 0 and "2-d coordinates" in scores["features"]
    assert 0 <= scores["modes"] <= 8 and 0 <= scores["high_quality"] <= 1


def test_sample_writes_a_grid(comparison, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert run("sample", comparison / "runs" / "none-s0", "--out", out, "--count", 100) == 0
    assert out.stat().st_size > 1000 and str(out) in capsys.readouterr().out


def test_eval_of_a_folder_without_checkpoint(tmp_path, capsys):
    assert run("eval", tmp_path) == 2
    assert "config.json is missing" in capsys.readouterr().err


def test_summary_table_by_hand():
    def result(arm, seed, fids, failure=None):
        return RunResult(arm, seed, None, evals=[{"step": s, "fid": f} for s, f in fids], failure=failure)
    results = [result("none", 0, [(10, 50.0), (20, 40.0)]), result("none", 1, [(10, 60.0), (20, 60.0)]),
               result("sine", 0, [(10, 45.0), (20, 30.0)]), result("sine", 1, [(10, 70.0)], failure="NaN at 12")]
    rows, threshold, target = summarise(results, ["none", "sine"], fail_factor=2.0)
    assert target == 50.0 and threshold == 60.0                     # mean of no-lens bests; 2 × best of all (30)
    none, sine = rows
    assert none["best_fid"].startswith("50 ±") and none["failed"].startswith("0/2 (0 %;")
    assert sine["final_fid"] == "30" and sine["failed"].startswith("1/2 (50 %;")
    assert none["reached"].endswith("(1/2 seeds)") and sine["reached"].startswith("10 (1/2")
    rows, threshold, _ = summarise(results, ["none", "sine"], fail_factor=2.0, fail_fid=100.0)
    assert threshold == 100.0 and rows[0]["failed"].startswith("0/2")
    assert rows[1]["failed"].startswith("1/2")                          # the NaN run still fails


def test_parallel_jobs_train_the_same_runs_with_a_log_each(tmp_path, monkeypatch):
    """--jobs 2: the same runs as one at a time (same weights), each in its own process and log."""
    import os
    # Bit for bit only at equal thread counts (docs/DECISIONS.md): --jobs 1 trains here, on this process's
    # threads; each of the 2 workers gets cpu_count // 2 (one for these MLP nets, unless OMP_NUM_THREADS
    # is set), so make that the same number on any machine.
    monkeypatch.setattr(os, "cpu_count", lambda: 2 * torch.get_num_threads())
    one, out = tmp_path / "one-at-a-time", tmp_path / "parallel"
    for folder, jobs in ((one, 1), (out, 2)):
        assert run("compare", "--out", folder, "--seeds", 2, "--arms", "none,sine", "--steps", 4, "--k", 2,
                   "--jobs", jobs, *TINY) == 0
    for name in ("none-s0", "sine-s0", "sine-s1"):
        a = torch.load(one / "runs" / name / "checkpoint.pt", weights_only=False)
        b = torch.load(out / "runs" / name / "checkpoint.pt", weights_only=False)
        for net in ("G", "D", "lens"):
            assert (a[net] is None) == (b[net] is None)
            assert all(torch.equal(v, b[net][k]) for k, v in (a[net] or {}).items()), (name, net)
        assert "step=4" in (out / "logs" / f"{name}.log").read_text()   # the run's own progress lines
    assert (out / "report.md").exists()


def test_parallel_compare_stops_on_sigterm_and_resumes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "stopped"
    argv = [sys.executable, "-m", "tempered_gan", "compare", "--out", str(out), "--seeds", "2", "--arms", "none,sine",
            "--steps", "400", "--k", "2", "--jobs", "2", *[str(a) for a in TINY], "--eval-every", "200",
            "--log-every", "20", "--sample-every", "400", "--checkpoint-every", "20"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("runs/*/checkpoint.pt")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "run the same compare command again" in err
    steps = [torch.load(p, weights_only=False)["step"] for p in out.glob("runs/*/checkpoint.pt")]
    assert steps and all(s < 400 for s in steps)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(torch.load(p, weights_only=False)["step"] for p in out.glob("runs/*/checkpoint.pt")) == [400] * 4


def test_seeds_may_be_a_range_kept_apart_from_the_tuning_seeds(tmp_path):
    from tempered_gan.cli.options import parse_seeds
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("100-102") == [100, 101, 102] and parse_seeds("4,9") == [4, 9]
    assert run("compare", "--out", tmp_path / "c", "--seeds", "5-6", "--arms", "none", "--steps", 2, *TINY) == 0
    assert sorted(p.name for p in (tmp_path / "c" / "runs").iterdir()) == ["none-s5", "none-s6"]
    assert "seeds: 5, 6." in (tmp_path / "c" / "report.md").read_text()


def test_every_arm_has_its_own_colour_and_plain_arms_keep_theirs():
    from tempered_gan.studies.arms import ARM_COLOURS, arm_colours, parse_arms
    colours = arm_colours(parse_arms("none,sine:k=10,sine,sine:k=30,noise:noise_sigma=0.5,noise,blur:blur_sigma=1"))
    assert len(set(colours.values())) == len(colours)                       # one colour per arm
    assert (colours["sine"], colours["noise"]) == (ARM_COLOURS["sine"], ARM_COLOURS["noise"])
    assert colours["blur:blur_sigma=1"] == ARM_COLOURS["blur"]               # no plain blur arm: the variant has it


def test_compare_trains_the_mixtures_on_one_cpu_thread_as_train_does(tmp_path, monkeypatch):
    """The thread policy of the 2-D mixtures' tiny nets (build.use_thread_policy) holds for compare's runs too:
    the default --jobs 1 trains in this process, which compare used to leave on every core."""
    from tempered_gan.training.trainer import Trainer
    seen = []
    step = Trainer.step
    monkeypatch.setattr(Trainer, "step", lambda self: (seen.append(torch.get_num_threads()), step(self))[1])
    before = torch.get_num_threads()
    try:
        for omp, expected in ((None, 1), ("2", 2)):      # OMP_NUM_THREADS, when set, is the user's choice
            if omp is None:
                monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
            else:
                monkeypatch.setenv("OMP_NUM_THREADS", omp)
            torch.set_num_threads(2)
            seen.clear()
            assert run("compare", "--out", tmp_path / f"omp{omp}", "--seeds", 1, "--arms", "none", "--steps", 2,
                       *TINY) == 0
            assert seen and set(seen) == {expected}
    finally:
        torch.set_num_threads(before)


def test_a_stabiliser_flag_needs_an_arm_that_carries_it(tmp_path, capsys):
    from tempered_gan.config.train_config import TrainConfig
    from tempered_gan.studies.arms import parse_arms
    from tempered_gan.studies.compare import grid_configs
    arms, _, configs = grid_configs(TrainConfig(r1_gamma=1.0), parse_arms("none,sine+r1"), [0], quiet=True)
    assert configs["sine+r1", 0].r1_gamma == 1.0 and configs["none", 0].r1_gamma == 0.0
    for flag, value in (("--diffaugment", "color"), ("--spectral-norm", None), ("--r1-gamma", 1)):
        argv = ["compare", "--out", tmp_path / "c", "--arms", "none,sine", "--steps", 2, *TINY, flag]
        assert run(*argv, *([value] if value is not None else [])) == 2, flag
        err = capsys.readouterr().err.strip()
        assert "which --arms does not include" in err and len(err.splitlines()) == 1
