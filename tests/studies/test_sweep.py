"""sweep: a grid of training settings × arms × seeds, an absolute success rule, the report and the map."""
import json
import math
import re
from pathlib import Path

import pytest
from helpers import TINY_POINTS_ARGS

from tempered_gan.cli.main import main
from tempered_gan.config.train_config import TrainConfig
from tempered_gan.errors import UserError
from tempered_gan.studies.arms import parse_arm
from tempered_gan.studies.compare_report import RunResult
from tempered_gan.studies.statistics import sign_test
from tempered_gan.studies.success import success_rule, trains
from tempered_gan.studies.sweep import Cell, parse_grid
from tempered_gan.studies.sweep_report import write_sweep_report

TINY = ["--dataset", "mixture-ring8", *TINY_POINTS_ARGS,
        "--log-every", "2", "--eval-every", "2", "--fid-samples", "256", "--sample-every", "4", "--no-progress"]
SMALL = ["sweep", "--grid", "lr=1e-3,4e-3", "--arms", "none,sine,r1", "--seeds", 2, "--steps", 4, "--k", 2, *TINY]


def run(*argv):
    return main([str(a) for a in argv])


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err, err
    return err


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    assert run(*SMALL, "--out", out) == 0
    return out


def test_a_small_sweep_writes_cells_report_and_map(small):
    cells = sorted(p.name for p in (small / "cells").iterdir())
    assert cells == ["lr=0.001", "lr=0.004"]
    for cell, lr in (("lr=0.001", 1e-3), ("lr=0.004", 4e-3)):
        runs = sorted(p.name for p in (small / "cells" / cell / "runs").iterdir())
        assert runs == ["none-s0", "none-s1", "r1-s0", "r1-s1", "sine-s0", "sine-s1"]
        configs = {r: json.loads((small / "cells" / cell / "runs" / r / "config.json").read_text()) for r in runs}
        assert {c["lr"] for c in configs.values()} == {lr}
        assert configs["sine-s0"]["lens_lr"] == lr                   # the lens's lr defaults to the cell's, not the base's
        assert configs["r1-s0"]["r1_gamma"] == 10.0 and configs["none-s0"]["r1_gamma"] == 0.0
        assert (small / "cells" / cell / "report.md").is_file()       # each cell is a comparison of its own
    report = (small / "report.md").read_text()
    assert "tempered-gan sweep --grid lr=1e-3,4e-3" in report
    assert "final FID of at most 0.1 (--fail-fid) and at least 8 modes" in report       # the ring's default rule
    assert "| lr=0.001 | no lens |" in report and "| lr=0.004 | no lens |" in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "/2 (" in line]
    assert len(rows) == 6 and all(re.search(r"\d+/\d+ \(\d+ %; \d+–\d+ %\)", row) for row in rows)  # k/n, Wilson
    assert "## Across cells" in report and "| R1 penalty |" in report and "stratified bootstrap" in report
    assert (small / "map.png").stat().st_size > 5000


def test_running_the_same_sweep_again_trains_nothing(small, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in small.glob("cells/*/runs/*/checkpoint.pt")}
    assert len(stamps) == 12
    assert run(*SMALL, "--out", small) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "report:" in capsys.readouterr().err


def test_shards_split_the_whole_sweep_and_the_last_writes_the_report(tmp_path, small, capsys):
    out = tmp_path / "sharded"
    assert run(*SMALL, "--out", out, "--shard", "0/2") == 0
    assert not (out / "report.md").exists()
    assert len(list(out.glob("cells/*/runs/*/checkpoint.pt"))) == 6          # half of the 12 runs
    assert run(*SMALL, "--out", out, "--shard", "1/2") == 0
    assert (out / "report.md").exists()
    import torch
    for ckpt in small.glob("cells/*/runs/*/checkpoint.pt"):                   # the same runs as one process's
        mine = torch.load(out / ckpt.relative_to(small), weights_only=True)
        theirs = torch.load(ckpt, weights_only=True)
        assert all(torch.equal(v, mine["G"][k]) for k, v in theirs["G"].items()), ckpt


@pytest.mark.parametrize("grid,message", [
    ("foo=1,2", "not a grid axis, no such option"),
    ("k=100,200", "it belongs to the arms"),
    ("noise_sigma=0.5,1", "it belongs to the arms"),
    ("lr=abc", "lr must be a finite number"),
    ("lr=-1,1e-3", "sweep cell lr=-1: lr must be positive"),
    ("lr", "write KEY=V1,V2"),
    ("gp_weight=1,10", "gp_weight is an axis for wgan-gp only"),
])
def test_a_bad_grid_is_one_error_line_and_writes_nothing(tmp_path, capsys, grid, message):
    out = tmp_path / "bad"
    assert run("sweep", "--grid", grid, "--out", out, *TINY) == 2
    assert message in one_error(capsys)
    assert not out.exists()


def test_other_bad_sweeps_are_one_line(tmp_path, capsys):
    out = tmp_path / "bad"
    assert run("sweep", "--out", out, *TINY) == 2 and "at least one --grid" in one_error(capsys)
    assert run("sweep", "--grid", "lr=1e-3,2e-3", "--lr", "1e-3", "--out", out, *TINY) == 2
    assert "--lr is an axis of the grid" in one_error(capsys)
    assert run("sweep", "--grid", "lr=1e-3,2e-3", "--dataset", "mnist", "--out", out) == 2
    assert "sweep needs --fail-fid for mnist" in one_error(capsys)
    assert run("sweep", "--grid", "lr=1e-3,2e-3", "--map", "beta1", "--out", out, *TINY) == 2
    assert "--map takes one or two of the grid's axes" in one_error(capsys)
    assert not out.exists()


def test_grid_values_are_parsed_by_the_options_type():
    axes = parse_grid(["lr=2e-4,1e-3", "critic-steps=1,5", "optimizer=adam,rmsprop", "loss=gan,lsgan"])
    assert axes == {"lr": [2e-4, 1e-3], "critic_steps": [1, 5], "optimizer": ["adam", "rmsprop"], "loss": ["gan", "lsgan"]}


# --- the rule and the statistics -------------------------------------------------------

def result(arm: str, seed: int, fid: float, modes: int = 8, failure: str | None = None) -> RunResult:
    return RunResult(arm, seed, Path("."), evals=[{"step": 10, "fid": fid + 1, "modes": modes},
                                                  {"step": 20, "fid": fid, "modes": modes}], failure=failure)


def test_the_success_rule_is_absolute():
    fid, modes = success_rule("mixture-grid25", None, None)
    assert (fid, modes) == (1.0, 20)
    assert trains(result("a", 0, 0.5, 25), fid, modes)
    assert not trains(result("a", 0, 1.5, 25), fid, modes)                   # FID above the threshold
    assert not trains(result("a", 0, 0.5, 19), fid, modes)                   # too few modes
    assert not trains(result("a", 0, 0.5, 25, failure="a loss became NaN"), fid, modes)
    assert not trains(result("a", 0, math.nan, 25), fid, modes)              # a NaN FID
    assert success_rule("mnist", 150.0, None) == (150.0, 8)
    with pytest.raises(UserError, match="needs --fail-fid"):
        success_rule("cifar10", None, None)


def test_the_sign_test_is_the_exact_two_sided_binomial_test_mcnemars_on_discordant_seeds():
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)             # 2 · 0.5⁵
    assert sign_test(6, 0) == pytest.approx(2 / 64)
    assert sign_test(3, 3) == pytest.approx(1.0)
    assert sign_test(1, 4) == sign_test(4, 1) == pytest.approx(2 * (1 + 5) / 32)


def test_the_aggregate_says_widens_only_when_the_interval_of_the_difference_is_above_zero(tmp_path):
    """Four cells × 6 seeds: the lens trains everywhere, plain training only in one cell, the noise as plain."""
    cells = [Cell((("lr", lr),)) for lr in (1e-4, 1e-3, 1e-2, 1e-1)]
    arms = [parse_arm(a) for a in ("none", "sine", "noise")]
    seeds = list(range(6))
    results = {}
    for i, cell in enumerate(cells):
        for s in seeds:
            plain_ok = i == 0
            results[cell, "none", s] = result("none", s, 0.05 if plain_ok else 3.0)
            results[cell, "sine", s] = result("sine", s, 0.04)
            results[cell, "noise", s] = result("noise", s, 0.05 if plain_ok else 3.0 + 0.01 * s)
    report = write_sweep_report(tmp_path, cells, arms, seeds, results, [], rule=(0.1, 8), reference="none",
                                map_axes=["lr"], command="tempered-gan sweep …", base=TrainConfig(), total=72).read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in report.splitlines() if line.startswith("| ")}
    assert "**widens**" in rows["sine lens"] and "+0.75 [+0.75, +0.75]" in rows["sine lens"]
    assert "cannot tell" in rows["instance noise"]
    assert "0.25 [0.25, 0.25]" in rows["no lens"] and "1.00 [1.00, 1.00]" in rows["sine lens"]
    assert "| lr=0.1 | no lens | 0/6 (0 %; 0–39 %) |" in report
    sine_row = next(line for line in report.splitlines() if line.startswith("|  | sine lens | 6/6") and "6 / 0" in line)
    assert "0.0312" in sine_row                                # McNemar: 6 discordant seeds, all one way
    assert (tmp_path / "map.png").stat().st_size > 3000


def _aggregate_of(tmp_path, seeds, arm_trains, name="agg"):
    """The across-cell rows of a hand-made sweep: four cells; the reference never trains, the arm
    where ``arm_trains(cell index, seed)``."""
    cells = [Cell((("lr", lr),)) for lr in (1e-4, 1e-3, 1e-2, 1e-1)]
    arms = [parse_arm(a) for a in ("none", "sine")]
    results = {}
    for i, cell in enumerate(cells):
        for s in seeds:
            results[cell, "none", s] = result("none", s, 3.0)
            results[cell, "sine", s] = result("sine", s, 0.04 if arm_trains(i, s) else 3.0)
    out = tmp_path / name
    out.mkdir()
    report = write_sweep_report(out, cells, arms, seeds, results, [], rule=(0.1, 8), reference="none",
                                map_axes=["lr"], command="…", base=TrainConfig(), total=8 * len(seeds)).read_text()
    return report, next(line for line in report.splitlines() if line.startswith("| sine lens |"))


def test_the_verdict_needs_seeds_not_cells(tmp_path):
    """Seeds share their starts across cells, so they are the unit: one seed, or one lucky seed of
    eight, never widens the region, however many cells agree; eight of eight does."""
    _, one_seed = _aggregate_of(tmp_path, [0], lambda i, s: True, "one")
    assert "cannot tell" in one_seed
    _, lucky = _aggregate_of(tmp_path, list(range(8)), lambda i, s: s == 0, "lucky")
    assert "cannot tell" in lucky and "1 / 0" in lucky
    report, every = _aggregate_of(tmp_path, list(range(8)), lambda i, s: i < 2, "every")
    assert "**widens**" in every and "8 / 0 (0.00781)" in every and "+0.50 [+0.50, +0.50]" in every
    again, _ = _aggregate_of(tmp_path, list(range(8)), lambda i, s: i < 2, "again")
    assert again == report                                    # the same runs give the same report, intervals too


def test_grid_values_that_print_alike_are_refused(tmp_path, capsys):
    assert run("sweep", "--grid", "lr=1e-3,1.0000001e-3", "--out", tmp_path / "x", *TINY) == 2
    assert "print alike" in one_error(capsys)
