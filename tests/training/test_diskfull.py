"""A full disk ends a command with one line naming the file (and, for a run, the last good checkpoint's step);
nothing written before is lost."""
import builtins
import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY_POINTS_ARGS

from tempered_gan.cli.main import main

TINY = [*TINY_POINTS_ARGS, "--no-progress"]


def run(*argv):
    return main([str(a) for a in argv])


class _FullFile:
    """A file opened for writing on a full disk: every write fails as the kernel's would."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture()
def full_disk(monkeypatch):
    """``full_disk(root, when)``: from the moment ``when()`` is true, files opened for writing under ``root``
    take no more bytes."""
    real_open = builtins.open

    def install(root: Path, when=lambda: True):
        def fake_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            if any(c in mode for c in "wax+") and str(file).startswith(str(root)) and when():
                return _FullFile(f)
            return f
        monkeypatch.setattr(builtins, "open", fake_open)
    return install


def snapshot(folder: Path) -> dict:
    """The folder's files and their hashes, but the lock file (it names its latest holder)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".tempered-gan.lock"}


def one_line(capsys, code):
    """The error: one line, the last; progress lines before it are the run's own."""
    err = capsys.readouterr().err.strip()
    errors = [x for x in err.splitlines() if "error" in x.lower()]
    assert code == 2 and errors == err.splitlines()[-1:] and "Traceback" not in err, err
    return errors[0]


def loss_steps(out):
    from tempered_gan.training.run_log import read_metrics
    return [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss_d" in r]


@pytest.mark.parametrize("fails,options", [
    ("metrics.jsonl", ["--log-every", 1, "--sample-every", 100]),
    ("checkpoint.pt", ["--log-every", 100, "--sample-every", 100]),
    ("samples/step_0000003.png", ["--log-every", 100, "--sample-every", 3]),
])
def test_disk_full_during_a_run_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, full_disk, fails, options):
    out = tmp_path / "run"
    full_disk(out, when=lambda: (out / "checkpoint.pt").exists())    # fills right after the step-2 checkpoint
    code = run("train", "--out", out, "--steps", 8, "--k", 20, "--checkpoint-every", 2, *options, *TINY)
    err = one_line(capsys, code)
    assert f"cannot write {out / fails}: No space left on device; stopped at step" in err
    assert f"the last good checkpoint, step 2, is kept in {out / 'checkpoint.pt'}" in err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2     # intact, loadable
    assert not list(out.rglob(".*.tmp-*"))                                      # no temporary file left behind
    if fails == "metrics.jsonl":
        assert loss_steps(out) == [1, 2]                                        # every earlier line kept
    if fails.startswith("samples"):
        assert not (out / fails).exists()                                       # no half-written PNG


def test_resume_on_a_full_disk_is_one_line_with_nothing_changed(tmp_path, capsys, full_disk):
    out = tmp_path / "run"
    assert run("train", "--out", out, "--steps", 4, "--k", 2, "--log-every", 1, *TINY) == 0
    before = snapshot(out)
    full_disk(out)
    err = one_line(capsys, run("train", "--resume", out, "--steps", 8))
    assert f"cannot write {out / 'config.json'}: No space left on device" in err
    assert f"the last good checkpoint, step 4, is kept in {out / 'checkpoint.pt'}" in err
    assert snapshot(out) == before


def test_a_report_on_a_full_disk_is_one_line_and_keeps_the_old_one(tmp_path, capsys, full_disk):
    out = tmp_path / "cmp"
    argv = ["compare", "--out", out, "--seeds", 1, "--arms", "none", "--steps", 2, "--k", 1, "--eval-every", 2,
            "--fid-samples", 256, "--dataset", "mixture-ring8", "--log-every", 2, *TINY]
    assert run(*argv) == 0
    before = snapshot(out)
    full_disk(out)
    err = one_line(capsys, run(*argv))          # every run is finished: only the report is written
    assert f"cannot write {out / 'fid.png'}: No space left on device" in err
    assert snapshot(out) == before


def test_a_cache_on_a_full_disk_costs_only_the_cache(tmp_path, full_disk):
    from tempered_gan.util.atomic_files import write_cache
    full_disk(tmp_path)
    with pytest.warns(UserWarning, match="could not write metrics cache .*No space left on device"):
        write_cache(tmp_path / "metrics" / "x.pt", {"a": torch.zeros(3)}, "metrics cache")
    assert not (tmp_path / "metrics" / "x.pt").exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tmpfs needs root")
def test_a_real_full_tmpfs(tmp_path):
    """A full disk for real, on a small file system: a run fills it, then --resume on the same disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = disk / "run"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        argv = [sys.executable, "-m", "tempered_gan", "train", "--out", str(out), "--steps", "100000",
                "--checkpoint-every", "50", "--sample-every", "100000", "--log-every", "1", *TINY]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
        err = done.stderr.strip().splitlines()
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert "No space left on device" in err[-1] and "the last good checkpoint, step " in err[-1]
        step = int(err[-1].split("the last good checkpoint, step ")[1].split(",")[0])
        assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == step
        resumed = subprocess.run([sys.executable, "-m", "tempered_gan", "train", "--resume", str(out), "--steps",
                                  "100000", "--no-progress"], capture_output=True, text=True, timeout=600, env=env)
        assert resumed.returncode == 2 and "Traceback" not in resumed.stderr, resumed.stderr[-2000:]
        assert "No space left on device" in resumed.stderr and f"step {step}" in resumed.stderr.splitlines()[-1]
        assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == step
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
