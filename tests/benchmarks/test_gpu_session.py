"""benchmarks/gpu_session.sh, the one script that runs the GPU checks, checked
on the CPU: its one-line refusals, and its stage, time-limit and summary logic
with every stage replaced by a tiny stand-in (GPU_SESSION_FAKE=1); and
benchmarks/gpu_session_results.py on made-up results."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from helpers import ROOT as PROJECT

ROOT = str(PROJECT)
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_session.sh")
PART1 = ["device", "commands", "tests", "bench-speed", "bench-agreement", "cli-eager-lens", "cli-graphs-lens", "cli-eager-none",
         "cli-graphs-none", "bench-concurrent"]


def session(tmp_path, *args, **env):
    out = tmp_path / "out"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GPU_SESSION", "STAGES", "BUDGET"))}
    environ.update(OUT=str(out), PYTHON=sys.executable, **env)
    result = subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=environ, timeout=120)
    return result, out


def summary_rows(out):
    lines = (out / "summary.txt").read_text().splitlines()
    assert lines[0].split() == ["stage", "status", "seconds"]
    return {line.split()[0]: " ".join(line.split()[1:-1]) for line in lines[1:]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_without_cuda_it_says_so_in_one_line(tmp_path):
    result, out = session(tmp_path, "1")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"gpu_session.sh: needs a CUDA GPU; {sys.executable} finds none (no torch, or torch.cuda.is_available() is false)"]
    assert not out.exists()


def test_a_part_must_be_named(tmp_path):
    result, _ = session(tmp_path, "3")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "usage" in result.stderr


def test_a_failed_or_overrunning_stage_never_stops_the_next_and_the_summary_comes_last(tmp_path):
    # Budget 22 s less 15 s kept for the end: each stage gets 7 s; the slow one uses them all.
    result, out = session(tmp_path, "1", GPU_SESSION_FAKE="1", GPU_SESSION_FAKE_FAIL="tests",
                          GPU_SESSION_FAKE_SLOW="bench-speed", BUDGET="22")
    assert result.returncode == 1, result.stdout + result.stderr
    rows = summary_rows(out)
    assert list(rows) == PART1
    assert rows["device"] == rows["commands"] == "ok" and rows["tests"] == "failed (exit 1)"
    assert rows["bench-speed"] == "timed out at 7s"
    assert all(rows[name] == "skipped: no time left" for name in PART1[PART1.index("bench-speed") + 1:])
    assert result.stdout.rstrip().endswith((out / "summary.txt").read_text().rstrip())
    assert "stand-in tests fails" in result.stdout
    files = sorted(p.name for p in out.iterdir())
    assert files == ["session-part1.tar.gz", "session.log", "summary.txt"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)
    assert "=== summary" in (out / "session.log").read_text()


def test_stages_reruns_only_the_named_stages_and_part_two_runs_the_comparison(tmp_path):
    result, out = session(tmp_path, "1", GPU_SESSION_FAKE="1", STAGES="device,commands,cli-graphs-lens")
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_rows(out) == {"device": "ok", "commands": "ok", "cli-graphs-lens": "ok"}
    budgets = [int(re.search(r"budget (\d+)s", result.stdout).group(1))]
    shutil.rmtree(out)
    result, out = session(tmp_path, "2", GPU_SESSION_FAKE="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_rows(out) == {"device": "ok", "compare": "ok"}
    budgets.append(int(re.search(r"budget (\d+)s", result.stdout).group(1)))
    # Both parts inside 15 minutes of GPU time, with 3 minutes left for a cold start and transfers.
    assert budgets == [405, 300] and sum(budgets) + 180 <= 15 * 60


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_script_is_shellcheck_clean():
    result = subprocess.run(["shellcheck", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_results_are_summarised_also_when_the_comparison_ran_out_of_time(tmp_path):
    work = tmp_path / "work"
    (work / "cli" / "graphs-lens").mkdir(parents=True)
    (work / "speed.json").write_text(json.dumps({"speed": [
        {"arm": "gan+lens", "path": "eager", "steps_per_s": 50.0},
        {"arm": "gan+lens", "path": "graph", "steps_per_s": 250.0}]}))
    (work / "concurrent.json").write_text(json.dumps({"concurrent": [
        {"arm": "gan+lens", "processes": 3, "each": 100.0, "aggregate": 300.0, "late_s": 0.0}]}))
    (work / "cli" / "graphs-lens" / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": 100 * i, "steps_per_s": rate}) + "\n" for i, rate in enumerate([20, 240, 260, 250], 1)))
    for run, steps in (("none-s0", [2000, 4000]), ("none-s1", [2000]), ("sine-s0", [2000, 4000])):
        (work / "compare" / "runs" / run).mkdir(parents=True)
        (work / "compare" / "runs" / run / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": s, "fid": s / 100 + len(run)}) + "\n" for s in steps)
            + json.dumps({"step": 4000, "loss_d": 1.0}) + "\n")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_session_results.py"), str(work)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "gan+lens       eager: 50.0  graph: 250.0  | graph ÷ eager 5.00" in text
    assert "concurrent gan+lens × 3: 100.0 steps/s each, 300.0 in all" in text
    assert "command line graphs-lens  250.0 steps/s (median of 3 windows" in text
    assert "comparison: 3 runs; steps evaluated in every run: [2000]" in text
    assert "FID at step 2000, none: 27.00, 27.00 (mean 27.00)" in text
    assert "FID at step 2000, sine: 27.00" in text
