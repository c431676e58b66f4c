"""compare --shard I/N: N independent processes make exactly the runs and report of one; the grid manifest
refuses a shard of another grid; --report-only reports what has finished and lists the rest."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT

from tempered_gan.cli.main import main
from tempered_gan.studies.shards import Shard, parse_shard, share

GRID = ["--dataset", "mixture-ring8", "--seeds", "2", "--arms", "none,sine", "--steps", "4", "--k", "2",
        "--batch-size", "32", "--width", "16", "--lens-width", "8", "--lens-blocks", "2", "--log-every", "2",
        "--eval-every", "2", "--fid-samples", "256", "--sample-every", "2", "--no-progress"]
RUNS = ["none-s0", "none-s1", "sine-s0", "sine-s1"]


def run(*argv):
    return main([str(a) for a in argv])


def start(out, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tempered_gan", "compare", "--out", str(out), *GRID, *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def table(report: Path) -> list[str]:
    return [line for line in report.read_text().splitlines() if line.startswith("|")]


def weights(path: Path) -> dict:
    state = torch.load(path / "checkpoint.pt", weights_only=True)
    return {f"{net}.{k}": v for net in ("G", "D", "lens") for k, v in (state[net] or {}).items()} | {"step": state["step"]}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "one"
    assert run("compare", "--out", out, *GRID) == 0
    return out


def test_shards_started_together_make_the_runs_and_report_of_one_process(one_process, tmp_path):
    out = tmp_path / "sharded"
    procs = [start(out, "--shard", f"{i}/2") for i in range(2)]     # started together, sharing only the folder
    for proc in procs:
        err = proc.communicate(timeout=600)[1]
        assert proc.returncode == 0, err[-3000:]
    assert sorted(p.name for p in (out / "runs").iterdir()) == RUNS
    for name in RUNS:
        a, b = weights(one_process / "runs" / name), weights(out / "runs" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if k != "step" else a[k] == b[k] for k in a), name
        assert (one_process / "runs" / name / "metrics.jsonl").read_text().count("\n") == \
            (out / "runs" / name / "metrics.jsonl").read_text().count("\n")
    assert table(out / "report.md") == table(one_process / "report.md")   # the last shard to finish wrote it
    assert "Not finished" not in (out / "report.md").read_text()
    manifest = json.loads((out / "grid.json").read_text())
    assert manifest["shards"] == 2 and [r["folder"] for r in manifest["runs"]] == [
        "runs/none-s0", "runs/sine-s0", "runs/none-s1", "runs/sine-s1"]


def test_each_shard_trains_only_its_share_and_report_only_lists_the_rest(tmp_path, capsys):
    out = tmp_path / "half"
    assert run("compare", "--out", out, *GRID, "--shard", "1/2") == 0       # seed 1 of both arms
    assert "is done; 2 of 4 runs of the grid are finished" in capsys.readouterr().err
    assert not (out / "report.md").exists()
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["none-s1", "sine-s1"]
    assert run("compare", "--out", out, *GRID, "--report-only") == 0
    report = (out / "report.md").read_text()
    assert "| no lens | 1 |" in report and "| sine lens | 1 |" in report      # one finished seed per arm
    assert "## Not finished: 2 of 4 runs" in report
    assert "- none, seed 0 (`none-s0`): missing" in report and "- sine, seed 0 (`sine-s0`): missing" in report
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["none-s1", "sine-s1"]   # trained nothing


def test_report_only_names_unfinished_runs(one_process, tmp_path, capsys):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(one_process, out)
    longer = [*GRID[:GRID.index("--steps")], "--steps", 6, *GRID[GRID.index("--steps") + 2:], "--report-only"]
    assert run("compare", "--out", out, *longer) == 2                          # all four stand at step 4 of 6
    assert "no run of the grid" in capsys.readouterr().err
    assert run("train", "--resume", out / "runs" / "none-s0", "--steps", 6) == 0
    assert run("compare", "--out", out, *longer) == 0
    report = (out / "report.md").read_text()
    assert "| no lens | 1 |" in report and "sine lens" not in table(out / "report.md")[2]
    assert "## Not finished: 3 of 4 runs" in report
    assert "- sine, seed 1 (`sine-s1`): unfinished, step 4 of 6" in report


@pytest.mark.parametrize("argv,message", [
    (["--shard", "0/3"], "is split into 2 shards, not 3: use --shard I/2"),
    (["--shard", "0/2", "--k", "3"], "holds another grid (mixture-ring8, gan, arms none,sine, seeds 0,1; k 2 there, 3 here)"),
    (["--shard", "0/2", "--arms", "none"], "holds another grid"),
    (["--shard", "0/2", "--seeds", "3"], "seeds 0,1 there, 0,1,2 here"),
    (["--report-only", "--lr", "0.01"], "holds another grid"),
    (["--shard", "2/2"], "--shard 2/2: I must be 0 … N−1 (here 0 … 1)"),
    (["--shard", "1"], "--shard takes I/N"),
    (["--shard", "0/0"], "N must be at least 1"),
    (["--shard", "0/2", "--report-only"], "--report-only reports the whole grid; it takes no --shard"),
])
def test_a_shard_of_another_grid_is_refused_with_nothing_changed(tmp_path, capsys, argv, message):
    out = tmp_path / "grid"
    assert run("compare", "--out", out, *GRID, "--shard", "1/2") == 0
    manifest = (out / "grid.json").read_text()
    capsys.readouterr()
    args = GRID + argv
    for flag in ("--k", "--arms", "--seeds"):     # later options replace the grid's
        if flag in argv and flag in GRID:
            at = args.index(flag)
            del args[at:at + 2]
    assert run("compare", "--out", out, *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert (out / "grid.json").read_text() == manifest
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["none-s1", "sine-s1"]


def test_shares_are_contiguous_disjoint_and_cover_the_grid():
    keys = [(arm, seed) for seed in range(3) for arm in ("none", "sine", "noise")]
    for n in (1, 2, 4, 9, 12):
        parts = [share(keys, Shard(i, n)) for i in range(n)]
        assert sum(parts, []) == keys                                   # in order, each run exactly once
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert share(keys, parse_shard("1/3")) == keys[3:6] and share(keys, None) == keys


@pytest.mark.parametrize("command", [
    ["compare", *GRID],
    ["sweep", *GRID, "--grid", "lr=1e-3,4e-3"],
    ["reproduce", "--rows", "dcgan-mnist", "--scale", "0.001"],
])
def test_report_only_on_a_folder_that_is_not_there_is_one_line_and_creates_nothing(tmp_path, capsys, command):
    out = tmp_path / "typo"
    assert run(*command, "--out", out, "--report-only") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and f"{out} does not exist" in err, err
    assert not out.exists()
