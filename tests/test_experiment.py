"""compare, eval and sample through the command line, on the 2-D mixture at tiny size."""
import json
import shutil

import pytest
import torch

from tempered_gan.cli import main
from tempered_gan.experiment import RunResult, summarise

TINY = ["--dataset", "mixture-ring8", "--batch-size", "32", "--width", "16", "--lens-width", "8", "--lens-blocks", "2",
        "--log-every", "2", "--eval-every", "2", "--fid-samples", "256", "--sample-every", "2", "--no-progress"]


def run(*argv):
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    assert run("compare", "--out", out, "--seeds", 2, "--arms", "none,sine,constant", "--steps", 4, "--k", 2, *TINY) == 0
    return out


def test_compare_writes_every_report_item(comparison):
    report = (comparison / "report.md").read_text()
    for figure in ("fid.png", "lens.png", "samples.png"):
        assert (comparison / figure).stat().st_size > 1000 and f"({figure})" in report
    for arm in ("no lens", "sine lens", "constant λ = 1"):
        assert f"| {arm} | 2 |" in report
    assert "best FID" in report and "final FID" in report and "step reaching no-lens best" in report
    assert "failed" in report and "modes" in report and "high_quality" in report
    assert "tempered-gan compare --out" in report and '"dataset": "mixture-ring8"' in report
    first_eval = next(json.loads(x) for x in (comparison / "runs" / "none-s0" / "metrics.jsonl").read_text().splitlines()
                      if "fid" in json.loads(x))
    assert f"FID: {first_eval['features']}, 256 generated samples" in report   # which extractor, how many samples
    assert sorted(p.name for p in (comparison / "runs").iterdir()) == [
        "constant-s0", "constant-s1", "none-s0", "none-s1", "sine-s0", "sine-s1"]


def test_arms_of_a_seed_start_from_identical_weights(comparison):
    from tempered_gan.config import TrainConfig
    from tempered_gan.train import build_nets
    nets = {}
    for arm in ("none", "sine", "constant"):
        cfg = TrainConfig.load(comparison / "runs" / f"{arm}-s1" / "config.json")
        G, D, _ = build_nets(cfg, (2,))
        nets[arm] = [p for net in (G, D) for p in net.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(nets["none"], nets["sine"]))
    assert all(torch.equal(a, b) for a, b in zip(nets["none"], nets["constant"]))


def test_rerunning_compare_skips_finished_runs_and_resumes_longer_ones(comparison):
    ckpt = comparison / "runs" / "sine-s0" / "checkpoint.pt"
    before = ckpt.stat().st_mtime_ns
    assert run("compare", "--out", comparison, "--seeds", 2, "--arms", "none,sine,constant", "--steps", 4, "--k", 2,
               *TINY) == 0
    assert ckpt.stat().st_mtime_ns == before                          # finished: skipped
    assert run("compare", "--out", comparison, "--seeds", 2, "--arms", "none,sine,constant", "--steps", 6, "--k", 2,
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
    assert run("compare", "--out", comparison, "--seeds", 2, "--arms", "none,sine,constant", "--steps", 4, "--k", 3,
               *TINY) == 2
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--arms", "none,blur"], "unknown arm 'blur'"),
    (["--lens", "sine"], "compare sets the lens per arm"),
    (["--seed", "3"], "use --seeds N"),
    (["--fail-factor", "nan"], "fail-factor must be at least 1 and finite, got nan"),
    (["--fail-factor", "0.5"], "fail-factor must be at least 1"),
    (["--fail-factor", "inf"], "fail-factor must be at least 1 and finite"),
    (["--fail-fid", "nan"], "fail-fid must be positive and finite, got nan"),
    (["--fail-fid", "-1"], "fail-fid must be positive and finite"),
    (["--fail-fid", "0"], "fail-fid must be positive"),
    (["--fail-fid", "inf"], "fail-fid must be positive and finite"),
    (["--retire-tolerance", "nan"], "retire-tolerance must be positive and finite"),
    (["--lr", "-1"], "lr must be positive"),
])
def test_compare_bad_options(tmp_path, capsys, argv, message):
    base = [a for a in TINY if a != "--no-progress"]
    assert run("compare", "--out", tmp_path / "c", "--steps", 2, *base, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "c").exists()                     # refused before anything was written


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
    assert none["best_fid"].startswith("50 ±") and none["failed"] == "0/2"
    assert sine["final_fid"] == "30" and sine["failed"] == "1/2"
    assert none["reached"].endswith("(1/2 seeds)") and sine["reached"].startswith("10 (1/2")
    rows, threshold, _ = summarise(results, ["none", "sine"], fail_factor=2.0, fail_fid=100.0)
    assert threshold == 100.0 and rows[0]["failed"] == "0/2" and rows[1]["failed"] == "1/2"   # the NaN run still fails
