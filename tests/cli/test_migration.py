"""Run folders and grids written in 0.1.0's vocabulary (``lens: sine|constant|none``, ``keep_lens``) and
0.2.0's (``retire_*``, ``lens_retired_at``) load, resume to the same bits and report as they were: the
configuration, the grid manifest, the checkpoint and the log migrate them (tempered_gan/util/renamed.py)."""
import hashlib
import json

import pytest
import torch
from helpers import TINY_POINTS_ARGS

from tempered_gan.cli.main import main

TINY = [*TINY_POINTS_ARGS, "--log-every", "2",
        "--no-progress"]
GRID = ["--dataset", "mixture-ring8", "--seeds", "1", "--arms", "none,sine", "--steps", "4", "--k", "2",
        "--eval-every", "2", "--fid-samples", "256", "--sample-every", "2", *TINY]


def run(*argv):
    return main([str(a) for a in argv])


def as_0_1_0(config: dict) -> dict:
    """A configuration as 0.1.0 wrote it: the schedule under ``lens`` (``none``: no tempering,
    with ``tempering: lens``), and ``keep_lens`` beside ``lens_exit``."""
    old = {k: v for k, v in config.items() if k != "schedule"}
    if config["tempering"] == "none":
        old.update(lens="none", tempering="lens")
    else:
        old["lens"] = config["schedule"]
    keep = config["lens_exit"] == "keep"
    old["keep_lens"] = keep
    return old


def rewrite_config(run_dir, change=as_0_1_0) -> None:
    path = run_dir / "config.json"
    path.write_text(json.dumps(change(json.loads(path.read_text())), indent=2))


def weights(run_dir) -> dict:
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return {f"{net}.{k}": v for net in ("G", "D", "lens") for k, v in (state[net] or {}).items()} | {
        "step": state["step"], "left": state["lens_exited_at"]}


@pytest.mark.parametrize("options", [["--k", 3], ["--tempering", "none"], ["--schedule", "constant"],
                                     ["--k", 2, "--lens-exit", "keep"]], ids=["sine", "none", "constant", "keep"])
def test_a_run_folder_of_0_1_0_resumes_to_the_same_bits(tmp_path, options):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run("train", "--steps", 6, "--out", straight, "--checkpoint-every", 3, *options, *TINY) == 0
    assert run("train", "--steps", 3, "--out", split, "--checkpoint-every", 3, *options, *TINY) == 0
    rewrite_config(split)
    assert "lens" in json.loads((split / "config.json").read_text())
    assert run("train", "--resume", split, "--steps", 6) == 0
    a, b = weights(straight), weights(split)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)
    assert run("eval", split) == 0 and run("sample", split, "--out", tmp_path / "grid.png") == 0


def test_a_grid_of_0_1_0_is_the_same_grid_and_reports(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert run("compare", "--out", out, *GRID) == 0
    report = (out / "report.md").read_text()
    manifest = json.loads((out / "grid.json").read_text())
    for entry in manifest["runs"]:            # the manifest and every run folder as 0.1.0 wrote them
        entry["config"] = dict(sorted(as_0_1_0(entry["config"]).items()))
        rewrite_config(out / entry["folder"])
    manifest["grid"] = hashlib.sha256(json.dumps(manifest["runs"], sort_keys=True).encode()).hexdigest()
    (out / "grid.json").write_text(json.dumps(manifest, indent=2))
    before = {f: (out / e["folder"] / "checkpoint.pt").read_bytes() for e in manifest["runs"] for f in [e["folder"]]}
    capsys.readouterr()
    assert run("compare", "--out", out, *GRID, "--report-only") == 0, capsys.readouterr().err
    tables = lambda text: [line for line in text.splitlines() if line.startswith("|")]   # noqa: E731
    assert tables((out / "report.md").read_text()) == tables(report)
    assert run("compare", "--out", out, *GRID, "--shard", "0/1") == 0, capsys.readouterr().err   # nothing retrained
    assert all((out / f / "checkpoint.pt").read_bytes() == data for f, data in before.items())


def as_0_2_0(run_dir) -> None:
    """The run folder as 0.2.0 wrote it: the converge exit's options as ``retire_*``, the exit step in the
    checkpoint as ``lens_retired_at`` and in the log as ``lens_retired``."""
    old_keys = {"lens_exit_tolerance": "retire_tolerance", "lens_exit_patience": "retire_patience"}
    rewrite_config(run_dir, lambda c: {old_keys.get(k, k): v for k, v in c.items()})
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["config"] = {old_keys.get(k, k): v for k, v in state["config"].items()}
    state["lens_retired_at"] = state.pop("lens_exited_at")
    torch.save(state, run_dir / "checkpoint.pt")
    log = run_dir / "metrics.jsonl"
    log.write_text(log.read_text().replace('"lens_exited"', '"lens_retired"'))


def test_a_run_folder_of_0_2_0_resumes_to_the_same_bits_and_says_what_it_renamed(tmp_path, capsys):
    options = ["--k", 2, "--lens-exit", "converge", "--lens-exit-tolerance", 1e9, "--lens-exit-patience", 1,
               "--checkpoint-every", 4, *TINY]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run("train", "--steps", 6, "--out", straight, *options) == 0
    assert run("train", "--steps", 4, "--out", split, *options) == 0
    assert weights(split)["left"] is not None                  # the lens exited before the checkpoint
    as_0_2_0(split)
    capsys.readouterr()
    assert run("train", "--resume", split, "--steps", 6) == 0
    err = capsys.readouterr().err
    assert "retire_tolerance is read as lens_exit_tolerance" in err and "lens_retired_at is read as lens_exited_at" in err
    a, b = weights(straight), weights(split)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)
    assert run("eval", split) == 0


def test_the_0_2_0_flags_still_work_with_a_note(tmp_path, capsys):
    new = ["--lens-exit-tolerance", 1e-3, "--lens-exit-patience", 7]
    old = ["--retire-tolerance", 1e-3, "--retire-patience", 7]
    assert run("train", "--dry-run", "--lens-exit", "converge", *old) == 0
    out, err = capsys.readouterr()
    assert "--retire-tolerance is deprecated" in err and "--lens-exit-tolerance" in err
    assert run("train", "--dry-run", "--lens-exit", "converge", *new) == 0
    assert capsys.readouterr().out == out
    assert run("train", "--dry-run", "--retire-patience", 7, "--lens-exit-patience", 8) == 2
    assert "contradicts" in capsys.readouterr().err
