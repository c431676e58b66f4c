"""The command line as users run it: runs, resume, interruption and bad input."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY_IMAGES_ARGS, TINY_POINTS_ARGS

from tempered_gan.cli.main import main
from tempered_gan.method import losses

TINY = [*TINY_POINTS_ARGS, "--log-every", "2"]
TINY_MNIST = [*TINY_IMAGES_ARGS, "--log-every", "2"]


def run(*argv):
    return main([str(a) for a in argv])


def weights(run_dir):
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return state["step"], {f"{net}.{k}": v for net in ("G", "D", "lens") for k, v in (state[net] or {}).items()}


def assert_bit_identical(a, b):
    step_a, wa = weights(a)
    step_b, wb = weights(b)
    assert step_a == step_b and wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])]


def test_a_run_writes_config_metrics_samples_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--steps", 6, "--k", 4, "--out", out, "--sample-every", 3, *TINY) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "mixture-ring8" and config["steps"] == 6 and config["schedule"] == "sine"
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in lines if "loss_d" in r]
    assert [r["step"] for r in records] == [2, 4, 6]
    assert {"step", "lambda", "loss_d", "loss_g", "loss_lens_adv", "loss_lens_rec"} <= records[0].keys()
    assert records[0]["lambda"] == pytest.approx(1 - 2 ** -0.5)   # t = K/2: 1 − sin(π/4)
    assert records[1]["lambda"] == 0.0
    # default exit: the lens is dropped right after step K
    assert {"step": 4, "lens_exited": True} in lines and records[2]["lambda"] is None
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]
    assert list((out / "tb").iterdir())
    assert (out / "checkpoint.pt").is_file()


def test_tensorboard_has_curves_for_measures_and_the_evaluation_counts_as_text(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert run("train", "--steps", 4, "--k", 2, "--eval-every", 2, "--fid-samples", 256, "--out", out, *TINY) == 0
    evaluations = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "fid" in r]
    assert {"samples", "real_samples", "modes_total"} <= evaluations[0].keys()      # the counts stay in the file
    events = EventAccumulator(str(out / "tb"), size_guidance={"tensors": 0}).Reload()
    curves = set(events.Tags()["scalars"])
    assert {"fid", "modes", "loss_d", "lambda"} <= curves
    assert not curves & {"samples", "real_samples", "modes_total"}, curves
    (text,) = [t for t in events.Tags()["tensors"] if t.startswith("evaluation")]
    written = [e.tensor_proto.string_val[0].decode() for e in events.Tensors(text)]
    assert len(written) == 1 and "samples: 256" in written[0] and "modes_total: 8" in written[0], written


def test_no_lens_run_logs_null_lens_terms(tmp_path):
    out = tmp_path / "run"
    assert run("train", "--steps", 2, "--tempering", "none", "--out", out, *TINY) == 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["lambda"] is None and record["loss_lens_rec"] is None and record["loss_d"] > 0
    assert weights(out)[1].keys() == {k for k in weights(out)[1] if not k.startswith("lens.")}


@pytest.mark.parametrize("extra", [["--schedule", "sine", "--k", "3"], ["--loss", "wgan-gp", "--schedule", "constant"]])
def test_resume_is_bit_identical_on_points(tmp_path, extra):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run("train", "--steps", 8, "--out", straight, *TINY, *extra) == 0
    assert run("train", "--steps", 4, "--out", split, *TINY, *extra) == 0
    assert run("train", "--resume", split, "--steps", 8) == 0
    assert_bit_identical(straight, split)
    lines = [json.loads(x)["step"] for x in (split / "metrics.jsonl").read_text().splitlines() if "loss_d" in x]
    assert lines == [2, 4, 6, 8]


@pytest.mark.parametrize("loss", ["gan", "lsgan"])
def test_resume_is_bit_identical_on_images(tmp_path, mnist_dir, loss):
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = [*TINY_MNIST, "--data-dir", mnist_dir, "--loss", loss, "--k", 4]
    assert run("train", "--steps", 6, "--out", straight, *common) == 0      # 40 samples / 8: crosses an epoch
    assert run("train", "--steps", 3, "--out", split, *common) == 0
    assert run("train", "--resume", split, "--steps", 6) == 0
    assert_bit_identical(straight, split)


def test_dry_run_prints_resolved_config_and_writes_nothing(tmp_path, capsys):
    assert run("train", "--dataset", "cifar10", "--loss", "wgan-gp", "--dry-run", "--out", tmp_path / "x") == 0
    config = json.loads(capsys.readouterr().out)
    assert config["critic_steps"] == 5 and config["arch"] == "wgan-gp" and config["k"] == 10_000
    assert not (tmp_path / "x").exists()


def test_existing_run_is_kept_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--steps", 2, "--out", out, *TINY) == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert run("train", "--steps", 2, "--out", out, *TINY) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before
    assert run("train", "--steps", 4, "--out", out, "--overwrite", *TINY) == 0
    assert json.loads((out / "config.json").read_text())["steps"] == 4
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    assert run("train", "--steps", 2, "--out", other, "--overwrite", *TINY) == 2
    assert (other / "thesis.tex").read_text() == "precious"


def test_bad_data_does_not_touch_an_existing_run(tmp_path):
    out = tmp_path / "run"
    assert run("train", "--steps", 2, "--out", out, *TINY) == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert run("train", "--dataset", "mnist", "--data-dir", tmp_path / "empty", "--out", out, "--overwrite") == 2
    assert (out / "checkpoint.pt").read_bytes() == before


BAD = [
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--loss", "hinge"], "unknown loss 'hinge'"),
    (["--schedule", "cosine"], "unknown schedule 'cosine'"),
    (["--k", "-5"], "k must be a positive"),
    (["--steps", "0"], "steps must be a positive"),
    (["--steps", "many"], "invalid int value"),
    (["--batch-size", "-1"], "batch-size must be a positive"),
    (["--lr", "0"], "lr must be positive"),
    (["--lr", "inf"], "lr must be positive and finite"),
    (["--lens-lr", "nan"], "lens-lr must be positive and finite"),
    (["--lens-exit-tolerance", "nan"], "lens-exit-tolerance must be positive and finite, got nan"),
    (["--lens-exit-tolerance", "-1"], "lens-exit-tolerance must be positive and finite, got -1.0"),
    (["--lens-exit-tolerance", "0"], "lens-exit-tolerance must be positive"),
    (["--lens-exit-tolerance", "inf"], "lens-exit-tolerance must be positive and finite"),
    (["--lambda-value", "nan"], "lambda-value must be ≥ 0 and finite"),
    (["--lambda-value", "-0.5"], "lambda-value must be ≥ 0 and finite"),
    (["--gp-weight", "nan"], "gp-weight must be ≥ 0 and finite"),
    (["--gp-weight=-inf"], "gp-weight must be ≥ 0 and finite"),
    (["--beta1", "nan"], "beta1 must be in [0, 1)"),
    (["--beta2", "1"], "beta2 must be in [0, 1)"),
    (["--lens-exit-patience", "0"], "lens-exit-patience must be a positive whole number"),
    (["--arch", "dcgan"], "does not fit dataset"),
    (["--dataset", "folder"], "needs --data-dir"),
    (["--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], "train-images-idx3-ubyte"),
    (["--batch-size", "200000"], "larger than the data set"),
    (["--eval-every", "2", "--fid-features", "inception"], "does not apply to mixture-ring8"),
    (["--fid-features", "fancy"], "unknown fid-features 'fancy'"),
    (["--amp", "fp8"], "unknown amp 'fp8'"),
    (["--cuda-graphs", "--device", "cpu"], "--cuda-graphs needs a CUDA device"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_clear_line(tmp_path, capsys, argv, message):
    code = run("train", "--out", tmp_path / "run", "--steps", 2, *argv) if "--steps" not in argv else \
        run("train", "--out", tmp_path / "run", *argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_missing_inception_weights_are_one_clear_line(tmp_path, mnist_dir, capsys):
    """On a written MNIST, so that it does not depend on which data sets the machine has."""
    code = run("train", *TINY_MNIST, "--data-dir", mnist_dir, "--out", tmp_path / "run", "--eval-every", 2,
               "--fid-features", "inception", "--inception-weights", "/nonexistent/pt_inception.pth")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "nothing is downloaded for a given path" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_features_that_do_not_fit_the_data_stop_before_any_step(tmp_path, capsys):
    """A 2-D run ends with an evaluation even without --eval-every: features that cannot score points are refused
    before training, not after the last step."""
    assert run("train", "--dataset", "mixture-ring8", "--steps", 2, "--fid-features", "inception",
               "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err.strip()
    assert "does not apply to mixture-ring8" in err and len(err.splitlines()) == 1, err
    assert "step=" not in err and not (tmp_path / "run").exists()


def test_corrupt_idx_file_is_one_clear_line(tmp_path, mnist_dir, capsys):
    path = mnist_dir / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    assert run("train", *TINY_MNIST, "--data-dir", mnist_dir, "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train-images-idx3-ubyte" in err


def test_bad_resume_folders(tmp_path, capsys):
    assert run("train", "--resume", tmp_path / "nothing") == 2
    assert "no such run folder" in capsys.readouterr().err
    out = tmp_path / "run"
    assert run("train", "--steps", 2, "--out", out, *TINY) == 0
    capsys.readouterr()
    assert run("train", "--resume", out, "--loss", "lsgan") == 2
    assert "--loss" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "width": 32}))
    assert run("train", "--resume", out, "--steps", 4) == 2
    assert "disagree on width" in capsys.readouterr().err
    (out / "config.json").write_text(json.dumps(config))
    (out / "checkpoint.pt").write_bytes(b"\x00garbage")
    assert run("train", "--resume", out, "--steps", 4) == 2
    assert "corrupt" in capsys.readouterr().err
    (out / "checkpoint.pt").unlink()
    assert run("train", "--resume", out, "--steps", 4) == 2
    assert "no checkpoint.pt" in capsys.readouterr().err


def test_resume_at_or_past_the_end_does_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--steps", 2, "--out", out, *TINY) == 0
    assert run("train", "--resume", out) == 0
    assert "nothing to do" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    calls = []

    def g_loss(fake):
        calls.append(1)
        return fake.mean() * float("nan") if len(calls) >= 5 else losses.gan_g(fake)

    monkeypatch.setitem(losses.OBJECTIVES, "gan", losses.Objective("gan", losses.gan_d, g_loss, losses.gan_lens))
    out = tmp_path / "run"
    code = run("train", "--steps", 10, "--checkpoint-every", 2, "--out", out, *TINY)
    err = capsys.readouterr().err
    assert code == 3 and "NaN or infinite at step 5" in err
    step, w = weights(out)
    assert step == 4 and all(torch.isfinite(v).all() for v in w.values() if v.is_floating_point())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_and_resume_continues(tmp_path, sig):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tempered_gan", "train", "--steps", "100000", "--checkpoint-every", "100000",
           "--out", str(out), *TINY, "--no-progress"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text()):
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "checkpoint saved" in err and "Traceback" not in err
    step, _ = weights(out)
    assert step >= 2
    assert run("train", "--resume", out, "--steps", step + 2) == 0
    assert weights(out)[0] == step + 2


def test_module_entry_point_and_help():
    result = subprocess.run([sys.executable, "-m", "tempered_gan", "train", "--help"], capture_output=True, text=True,
                            env={**os.environ})
    assert result.returncode == 0 and "--resume" in result.stdout and "--schedule" in result.stdout


CONVERGE_EXIT = ["--k", "2", "--lens-exit", "converge", "--lens-exit-tolerance", "1e9", "--lens-exit-patience", "2",
          "--checkpoint-every", "2"]


def test_the_converge_exit_changes_nothing_before_and_drops_the_lens_after(tmp_path):
    exiting, kept = tmp_path / "exiting", tmp_path / "kept"
    assert run("train", "--steps", 4, "--out", exiting, *TINY, *CONVERGE_EXIT) == 0
    assert run("train", "--steps", 4, "--out", kept, *TINY, *CONVERGE_EXIT, "--lens-exit", "keep") == 0
    _, w_exiting = weights(exiting)
    _, w_kept = weights(kept)
    assert all(torch.equal(w_exiting[k], w_kept[k]) for k in w_exiting)        # G and D: bit-identical up to the exit
    assert not any(k.startswith("lens.") for k in w_exiting)                     # ...and the lens is gone
    state = torch.load(exiting / "checkpoint.pt", weights_only=True)
    assert state["lens_exited_at"] == 4 and state["opt_lens"] is None
    records = [json.loads(x) for x in (exiting / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 4, "lens_exited": True} in records


def test_an_exited_lens_resumes_bit_identically(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run("train", "--steps", 8, "--out", straight, *TINY, *CONVERGE_EXIT) == 0
    assert run("train", "--steps", 6, "--out", split, *TINY, *CONVERGE_EXIT) == 0
    assert run("train", "--resume", split, "--steps", 8) == 0
    assert_bit_identical(straight, split)
    records = [json.loads(x) for x in (split / "metrics.jsonl").read_text().splitlines()]
    after = [r for r in records if r["step"] > 4 and "loss_d" in r]
    assert after and all(r["lambda"] is None and r["loss_lens_rec"] is None for r in after)
    assert sum(r.get("lens_exited", False) for r in records) == 1


@pytest.mark.parametrize("patience", [2])
def test_logging_sampling_evaluation_and_checkpoint_intervals_never_change_the_run(tmp_path, patience):
    """The converge exit used to be decided at log steps, so --log-every changed the trained weights."""
    common = [*TINY, "--k", 4, "--steps", 24, "--lens-exit-tolerance", 1e9, "--lens-exit-patience", patience]
    runs = {"a": ["--log-every", 2, "--sample-every", 3, "--checkpoint-every", 5],
            "b": ["--log-every", 8, "--sample-every", 24, "--checkpoint-every", 24, "--eval-every", 7,
                  "--fid-samples", 256],
            "c": ["--log-every", 24, "--sample-every", 11, "--checkpoint-every", 7]}
    for name, extra in runs.items():
        assert run("train", "--out", tmp_path / name, *common, *extra) == 0
    exited = {name: torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["lens_exited_at"]
               for name in runs}
    assert exited["a"] is not None and len(set(exited.values())) == 1, exited
    assert_bit_identical(tmp_path / "a", tmp_path / "b")
    assert_bit_identical(tmp_path / "a", tmp_path / "c")


def test_a_saved_configuration_with_an_impossible_number_is_refused_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--steps", 2, "--out", out, *TINY) == 0
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "lens_exit_tolerance": -1.0}))
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["config"]["lens_exit_tolerance"] = -1.0                   # both files agree, on an impossible value
    torch.save(state, out / "checkpoint.pt")
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert run("train", "--resume", out, "--steps", 4) == 2
    err = capsys.readouterr().err.strip()
    assert "lens-exit-tolerance must be positive and finite, got -1.0" in err and len(err.splitlines()) == 1
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_drops_a_torn_last_metrics_line_and_keeps_the_others(tmp_path, capsys):
    """A run killed (or out of disk) while appending a line left it torn; --resume crashed on it."""
    out = tmp_path / "run"
    assert run("train", "--steps", 4, "--out", out, *TINY) == 0
    metrics = out / "metrics.jsonl"
    before = metrics.read_text()
    metrics.write_text(before + '{"step": 6, "lambda": 0.0, "loss_d": 1.3')      # no newline: torn
    capsys.readouterr()
    assert run("train", "--resume", out, "--steps", 6) == 0
    err = capsys.readouterr().err
    assert "dropped a torn last line" in err and "Traceback" not in err
    after = metrics.read_text()
    assert after.startswith(before)                                                # earlier lines kept, byte for byte
    assert [json.loads(x)["step"] for x in after.splitlines() if "loss_d" in x] == [2, 4, 6]


def test_a_damaged_metrics_line_before_the_last_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--steps", 4, "--out", out, *TINY) == 0
    metrics = out / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    damaged = "\n".join([lines[0][:20], *lines[1:]]) + "\n"
    metrics.write_text(damaged)
    capsys.readouterr()
    assert run("train", "--resume", out, "--steps", 6) == 2
    err = capsys.readouterr().err.strip()
    assert "metrics.jsonl: line 1 is not a metrics record" in err and len(err.splitlines()) == 1
    assert metrics.read_text() == damaged


class _Payload:
    """Unpickling this runs a shell command: what a hostile checkpoint would carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused_and_never_runs(tmp_path, capsys):
    """Checkpoints used to be read with weights_only=False, so --resume, eval, sample and compare ran
    whatever a colleague's checkpoint.pt had pickled."""
    marker = tmp_path / "payload-ran"
    out = tmp_path / "run"
    assert run("train", "--steps", 2, "--out", out, *TINY) == 0
    compare_dir = tmp_path / "compare"
    assert run("compare", "--out", compare_dir, "--seeds", 1, "--arms", "none", "--steps", 2, "--k", 1, "--eval-every", 2,
               "--fid-samples", 256, *TINY, "--no-progress") == 0
    runs = {"train": (out, ["train", "--resume", out, "--steps", 4]), "eval": (out, ["eval", out]),
            "sample": (out, ["sample", out]),
            "compare": (compare_dir / "runs" / "none-s0",
                        ["compare", "--out", compare_dir, "--seeds", 1, "--arms", "none", "--steps", 4, "--k", 1,
                         "--eval-every", 2, "--fid-samples", 256, *TINY, "--no-progress"])}
    for command, (run_dir, argv) in runs.items():
        path = run_dir / "checkpoint.pt"
        state = torch.load(path, weights_only=True)
        torch.save({**state, "note": _Payload(marker)}, path)
        hostile = path.read_bytes()
        capsys.readouterr()
        assert run(*argv) == 2, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "refusing to load it" in err and "posix.system" in err, (command, err)
        assert not marker.exists(), f"{command} ran the checkpoint's payload"
        assert path.read_bytes() == hostile                       # left as it was, for the user to inspect
        torch.save(state, path)                                   # the clean state loads again
    assert run("train", "--resume", out, "--steps", 4) == 0


def test_log_lines_leave_out_the_values_that_do_not_exist(tmp_path, capsys):
    """After the lens left, every line used to print lambda=None … loss_lens_rec=None."""
    runs = {"drop": ["--k", 2, "--steps", 4], "no lens": ["--tempering", "none", "--steps", 4],
            "converge": [*CONVERGE_EXIT, "--steps", 6]}                   # exits after step 4
    for name, extra in runs.items():
        assert run("train", "--out", tmp_path / name, *TINY, *extra) == 0, name
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("step")]
        assert not any("None" in line or "null" in line for line in lines), err
        lines = [line for line in lines if line.startswith("step=")]
        assert [line.split()[0] for line in lines] == [f"step={t}" for t in range(2, extra[-1] + 1, 2)], err
        assert all("loss_d=" in line and "loss_g=" in line for line in lines)
        if name != "no lens":                                      # λ(K) = 0 and the lens terms while it is there
            assert "lambda=0 " in lines[0] and "loss_lens_rec=" in lines[0], lines[0]
        assert "lambda" not in lines[-1] and "loss_lens" not in lines[-1], lines[-1]   # it has left (or never was)
    records = [json.loads(x) for x in (tmp_path / "drop" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["lambda"] is None and records[-1]["loss_lens_rec"] is None    # the file keeps its nulls


def _summary(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("done: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("extra", [[], ["--eval-every", 3, "--fid-samples", 256]], ids=["2-D, no eval", "eval-every"])
def test_the_summary_line_gives_what_eval_reports_for_the_checkpoint(tmp_path, capsys, extra):
    """The run used to end with a raw dict; now one line for people, whose FID and modes are eval's."""
    out = tmp_path / "run"
    assert run("train", "--steps", 6, "--k", 2, "--out", out, *TINY, *extra) == 0
    summary = _summary(capsys.readouterr().err)
    assert run("eval", out) == 0
    scores = json.loads(capsys.readouterr().out)
    found = re.fullmatch(r"done: 6 steps in \d+ s; lens exited after step 2; final FID ([^,]+), (\d+) of (\d+) modes; "
                         r"last samples: (.+)", summary)
    assert found, summary
    assert float(found[1]) == float(f"{scores['fid']:.3g}")
    assert (int(found[2]), int(found[3])) == (scores["modes"], scores["modes_total"]) == (scores["modes"], 8)
    assert found[4] == str(out / "samples" / "step_0000006.png") and Path(found[4]).is_file()
    assert "None" not in summary and "null" not in summary and "{" not in summary

    assert run("train", "--resume", out, "--steps", 8) == 0
    summary = _summary(capsys.readouterr().err)
    assert run("eval", out) == 0
    scores = json.loads(capsys.readouterr().out)
    assert summary.startswith("done: steps 6 → 8 in ") and "lens exited after step 2;" in summary
    assert f"final FID {scores['fid']:.3g}, {scores['modes']} of 8 modes;" in summary


def test_the_summary_of_an_image_run_says_how_to_measure_fid(tmp_path, mnist_dir, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY_MNIST, "--data-dir", mnist_dir, "--steps", 3, "--tempering", "none", "--out", out) == 0
    summary = _summary(capsys.readouterr().err)
    assert summary == (f"done: 3 steps in {summary.split(' in ')[1].split(';')[0]}; no tempering; "
                       f"FID not measured (tempered-gan eval {out}, or --eval-every N during training); "
                       f"last samples: {out / 'samples' / 'step_0000003.png'}")


def test_point_samples_after_the_lens_left_say_so_and_show_x_in_the_middle(tmp_path, monkeypatch):
    """The last grid of a lens run used to be titled "no lens" with an empty middle panel."""
    from tempered_gan.training import snapshots
    drawn = {}

    def record(path, fake, shown, real, title, name):
        drawn[Path(path).name] = (shown.clone(), real.clone(), title, name)

    monkeypatch.setattr(snapshots, "save_point_panel", record)
    out = tmp_path / "run"
    assert run("train", "--steps", 4, "--k", 2, "--sample-every", 1, "--out", out, *TINY) == 0
    shown, real, title, name = drawn["step_0000001.png"]
    assert not torch.equal(shown, real) and name == "L(X)" and title == "step 1, λ = 0.293"
    for step in (2, 3, 4):                                   # the lens is dropped right after step K = 2
        shown, real, title, name = drawn[f"step_{step:07d}.png"]
        assert torch.equal(shown, real), step
        assert title == f"step {step}, lens exited after step 2" and name.startswith("X") and "L(X)" not in name
    assert run("sample", out, "--out", tmp_path / "again.png") == 0   # the sample command draws the same panel
    shown, real, title, name = drawn["again.png"]
    assert torch.equal(shown, real) and title == "step 4, lens exited after step 2"


def test_image_samples_after_the_lens_left_show_x_in_the_middle(tmp_path, mnist_dir, monkeypatch):
    import numpy as np
    from PIL import Image
    from torchvision.utils import make_grid

    from tempered_gan.training import snapshots
    titles = {}
    original = snapshots.save_image_panel

    def record(path, fake, shown, real, title, names):
        titles[Path(path).name] = (title, names)
        return original(path, fake, shown, real, title, names)

    monkeypatch.setattr(snapshots, "save_image_panel", record)
    out = tmp_path / "run"
    assert run("train", *TINY_MNIST, "--data-dir", mnist_dir, "--steps", 3, "--k", 2, "--sample-every", 1,
               "--out", out) == 0
    _, height, width = make_grid(torch.zeros(40, 1, 32, 32), nrow=8, padding=2).shape   # 40 images in the fixture

    def middle_and_right(step):
        image = np.asarray(Image.open(out / "samples" / f"step_{step:07d}.png").convert("RGB"))[-height:]
        image = torch.from_numpy(image.copy()).permute(2, 0, 1)
        return image[:, :, width + 8:2 * width + 8], image[:, :, 2 * width + 16:]

    middle, right = middle_and_right(1)
    assert not torch.equal(middle, right) and titles["step_0000001.png"][1] == ("G(Z)", "L(X)", "X")
    for step in (2, 3):
        middle, right = middle_and_right(step)
        assert right.shape == middle.shape and torch.equal(middle, right), step
        title, names = titles[f"step_{step:07d}.png"]
        assert title == f"step {step}, lens exited after step 2" and names[1].startswith("X")


def test_the_mixtures_train_on_one_cpu_thread_unless_omp_num_threads_says(tmp_path, monkeypatch):
    """Tiny MLP nets: several threads only spin on busy cores (the default demo ran 5× slower)."""
    import torch
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(2)
        assert main(["train", "--steps", "2", "--batch-size", "16", "--width", "8", "--no-progress",
                     "--out", str(tmp_path / "a")]) == 0
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        torch.set_num_threads(2)
        assert main(["train", "--steps", "2", "--batch-size", "16", "--width", "8", "--no-progress",
                     "--out", str(tmp_path / "b")]) == 0
        assert torch.get_num_threads() == 2                 # the user's choice stands
    finally:
        torch.set_num_threads(before)


def test_a_saved_configuration_starts_a_new_run_with_what_the_command_line_changes(tmp_path, capsys):
    first = tmp_path / "first"
    assert run("train", "--steps", 3, "--k", 2, "--lr", 3e-3, "--out", first, *TINY, "--no-progress") == 0
    saved = json.loads((first / "config.json").read_text())
    capsys.readouterr()
    assert run("train", "--config", first / "config.json", "--seed", 7, "--dry-run") == 0
    assert json.loads(capsys.readouterr().out) == {**saved, "seed": 7}
    second = tmp_path / "second"
    assert run("train", "--config", first / "config.json", "--seed", 7, "--out", second, "--no-progress") == 0
    assert json.loads((second / "config.json").read_text()) == {**saved, "seed": 7}
    toml = tmp_path / "few.toml"
    toml.write_text('dataset = "mixture-ring8"\nlr = 0.002\nretire_patience = 9\n')
    assert run("train", "--config", toml, "--dry-run", "--lr", 5e-3) == 0
    out, err = capsys.readouterr()
    resolved = json.loads(out)
    assert resolved["lr"] == 5e-3 and resolved["lens_exit_patience"] == 9 and resolved["lens_exit"] == "drop"
    assert "retire_patience is read as lens_exit_patience" in err


@pytest.mark.parametrize("text, message", [('{"dataset": "mnist", "colour": 3}', "unknown configuration keys: colour"),
                                           ("{not json", "not valid JSON"), ("[1, 2]", "does not hold a table")])
def test_a_bad_configuration_file_is_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    assert run("train", "--config", path, "--dry-run") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert run("train", "--config", tmp_path / "missing.json", "--dry-run") == 2
    assert "missing.json" in capsys.readouterr().err


def test_a_saved_configuration_derives_what_a_changed_option_decides_anew(tmp_path, capsys):
    first = tmp_path / "first"
    assert run("train", "--steps", 4, "--out", first, *TINY, "--no-progress") == 0       # K = 2: half the steps
    capsys.readouterr()
    assert run("train", "--config", first / "config.json", "--steps", 1000, "--dry-run") == 0
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["steps"], cfg["k"], cfg["sample_every"], cfg["lens_exit_steps"]) == (1000, 500, 100, 250)
    assert cfg["width"] == 16 and cfg["batch_size"] == 32          # given when the run was made: kept
