"""One owner per run folder: a second process is refused with nothing changed; a dead holder never blocks."""
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, TINY_POINTS_ARGS

from tempered_gan.cli.main import main
from tempered_gan.util import locks

TINY = [*TINY_POINTS_ARGS, "--log-every", "2",
        "--no-progress"]
HOLD = ("import sys; from tempered_gan.util import locks; locks.acquire(sys.argv[1], shared=sys.argv[2] == 'shared'); "
        "print('held', flush=True); sys.stdin.read()")


def run(*argv):
    return main([str(a) for a in argv])


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its content hash and modification time."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


class Holder:
    """Another process that holds ``folder``'s lock until stopped (or killed)."""

    def __init__(self, folder: Path, shared: bool = False):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), "shared" if shared else "exclusive"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env())
        assert self.proc.stdout.readline().strip() == "held"

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)


def refused(capsys, code):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


@pytest.fixture()
def trained(tmp_path):
    out = tmp_path / "run"
    assert run("train", "--steps", 4, "--k", 2, "--out", out, *TINY) == 0
    return out


@contextlib.contextmanager
def stopped_train(out: Path, checkpoint_every: int, until: str):
    """A real `train` into ``out``, stopped (SIGSTOP) once ``out/until`` exists, so that it holds its folder;
    yields the process, then kills it."""
    proc = subprocess.Popen([sys.executable, "-m", "tempered_gan", "train", "--out", str(out), "--steps", "100000",
                             "--k", "2", "--checkpoint-every", str(checkpoint_every), *TINY],
                            stderr=subprocess.DEVNULL, env=env())
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / until).exists():
            time.sleep(0.1)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.5)                      # let a write in flight land before the caller's snapshot
        yield proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=30)


def test_a_running_train_refuses_resume_overwrite_and_a_second_train(tmp_path, capsys):
    """A real `train` is stopped once it has a checkpoint, holding its folder: every second process
    is refused in one line naming it, and not a byte of the folder changes."""
    out = tmp_path / "run"
    with stopped_train(out, 2, "checkpoint.pt") as proc:
        before = snapshot(out)
        assert "checkpoint.pt" in before
        for argv in (["train", "--resume", out, "--steps", 200000],
                     ["train", "--out", out, "--overwrite", "--steps", 4, *TINY],
                     ["train", "--out", out, "--steps", 4, *TINY]):
            err = refused(capsys, run(*argv))
            assert f"{out} is in use by pid {proc.pid} on {socket.gethostname()} since " in err, err
        assert snapshot(out) == before


def test_a_run_training_before_its_first_checkpoint_is_named_as_busy_not_as_empty(tmp_path, capsys):
    """resume, eval and sample take the folder's lock before they look for the checkpoint: a run that is
    training but has not saved one yet is refused in one line naming its process, with nothing changed."""
    out = tmp_path / "busy"
    with stopped_train(out, 100000, "metrics.jsonl") as proc:
        before = snapshot(out)
        assert "config.json" in before and "checkpoint.pt" not in before
        for argv in (["train", "--resume", out], ["eval", out], ["sample", out]):
            err = refused(capsys, run(*argv))
            assert f"{out} is in use by pid {proc.pid} on {socket.gethostname()} since " in err, (argv, err)
        assert snapshot(out) == before


def test_eval_and_sample_of_a_missing_folder_create_nothing(tmp_path, capsys):
    for command in ("eval", "sample"):
        err = refused(capsys, run(command, tmp_path / "nowhere"))
        assert "no such run folder" in err
    assert not (tmp_path / "nowhere").exists()


def test_a_dead_holder_never_blocks(trained, capsys):
    holder = Holder(trained)
    assert "in use by" in refused(capsys, run("train", "--resume", trained, "--steps", 6))
    holder.kill()                            # SIGKILL: no clean-up ran; the lock file is still there
    assert (trained / locks.LOCK_NAME).exists()
    assert run("train", "--resume", trained, "--steps", 6) == 0
    assert run("train", "--out", trained, "--overwrite", "--steps", 2, *TINY) == 0


def test_compare_on_a_held_folder_is_refused_with_nothing_written(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--out", out, "--seeds", 1, "--arms", "none", "--steps", 2, "--k", 1, "--eval-every", 2,
            "--fid-samples", 256, "--dataset", "mixture-ring8", *TINY]
    holder = Holder(out)
    try:
        before = snapshot(out)
        err = refused(capsys, run(*argv))
        assert f"{out} is in use by pid {holder.proc.pid}" in err and "comparison" in err
        assert snapshot(out) == before and not (out / "runs").exists()
    finally:
        holder.stop()
    assert run(*argv) == 0 and (out / "report.md").exists()   # released: the same command now runs


def test_compare_refuses_a_run_folder_that_another_process_trains(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--out", out, "--seeds", 1, "--arms", "none", "--steps", 2, "--k", 1, "--eval-every", 2,
            "--fid-samples", 256, "--dataset", "mixture-ring8", *TINY]
    holder = Holder(out / "runs" / "none-s0")
    try:
        err = refused(capsys, run(*argv))
        assert f"{out / 'runs' / 'none-s0'} is in use by pid {holder.proc.pid}" in err
        assert not (out / "runs" / "none-s0" / "config.json").exists()
    finally:
        holder.stop()


def test_a_held_folder_is_left_alone_by_overwrite_even_when_it_holds_no_run(tmp_path, capsys):
    out = tmp_path / "fresh"
    holder = Holder(out)                     # e.g. a run that has not written its config yet
    try:
        assert "in use by" in refused(capsys, run("train", "--out", out, "--overwrite", "--steps", 2, *TINY))
        assert locks.entries(out) == []
    finally:
        holder.stop()


def test_locks_in_one_process_nest_and_release():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        a = locks.acquire(Path(d) / "x")
        b = locks.acquire(Path(d) / "x")
        assert a is b and locks.held(Path(d) / "x")
        b.release()
        assert locks.held(Path(d) / "x")
        a.release()
        assert not locks.held(Path(d) / "x")


def test_shared_holders_coexist_and_exclude_an_exclusive_one(tmp_path):
    first, second = Holder(tmp_path / "c", shared=True), Holder(tmp_path / "c", shared=True)
    try:
        with pytest.raises(locks.UserError, match="in use by"):
            locks.acquire(tmp_path / "c")
    finally:
        first.stop()
        second.stop()
    locks.acquire(tmp_path / "c").release()


def test_eval_and_sample_write_nothing_into_the_folder_they_read(trained, tmp_path, capsys):
    """Readers only probe the lock: a run copied without its lock file (another user's, read-only media)
    stays without one, and nothing is written there but what sample is asked to write elsewhere."""
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns(locks.LOCK_NAME))
    before = snapshot(copy)
    assert run("eval", copy) == 0 and run("sample", copy, "--out", tmp_path / "grid.png") == 0
    assert not (copy / locks.LOCK_NAME).exists() and snapshot(copy) == before
