"""tempered-gan reproduce: the paper's table as compare grids, shrunk with --scale to run on tiny data."""
import json

import pytest

from tempered_gan.cli.main import main

TINY = ["--fid-features", "classifier", "--width", 4, "--z-dim", 8, "--lens-width", 4, "--lens-blocks", 1,
        "--batch-size", 8, "--fid-samples", 64, "--no-progress"]


def run(*argv):
    return main([str(a) for a in argv])


def errors(capsys):
    return [x for x in capsys.readouterr().err.strip().splitlines() if "error" in x]


@pytest.fixture()
def data_root(tmp_path, monkeypatch):
    from helpers import write_mnist
    root = tmp_path / "data"
    write_mnist(root / "mnist", n=40)
    monkeypatch.setenv("TEMPERED_GAN_DATA", str(root))
    return root


def test_reproduce_scaled_runs_end_to_end_beside_the_papers_numbers(tmp_path, data_root, capsys):
    out = tmp_path / "paper"
    argv = ["reproduce", "--out", out, "--rows", "dcgan-mnist,lsgan-color-mnist", "--scale", 0.00002, "--seeds", 1,
            *TINY]
    assert run(*argv) == 0
    report = (out / "report.md").read_text()
    assert "| DCGAN, MNIST | none | 42 |" in report and "| DCGAN, MNIST | sine | 22 |" in report
    assert "| LSGAN, Color MNIST | none | best 90 |" in report
    assert "NOT comparable" in report and "steps, K and evaluation interval × 2e-05" in report
    for row, dataset, loss in (("dcgan-mnist", "mnist", "gan"), ("lsgan-color-mnist", "color-mnist", "lsgan")):
        assert (out / row / "report.md").exists()
        cfg = json.loads((out / row / "runs" / "sine-s0" / "config.json").read_text())
        assert (cfg["dataset"], cfg["loss"], cfg["arch"], cfg["steps"], cfg["k"]) == (dataset, loss, {"gan": "dcgan"}.get(
            loss, loss), 2, 1)
        assert json.loads((out / row / "runs" / "none-s0" / "config.json").read_text())["tempering"] == "none"
    capsys.readouterr()
    assert run(*argv, "--report-only") == 0                       # the same table from the finished runs
    assert (out / "report.md").read_text().split("## How")[0] == report.split("## How")[0]


def test_missing_inception_weights_is_one_line_before_anything(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.delenv("TEMPERED_GAN_INCEPTION", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert run("reproduce", "--out", tmp_path / "p", "--rows", "dcgan-mnist", "--scale", 0.00002) == 2
    lines = errors(capsys)
    assert len(lines) == 1 and "Inception FID weights" in lines[0] and "--fid-features classifier" in lines[0]
    assert not (tmp_path / "p").exists()


def test_each_missing_data_set_is_one_line_naming_its_place(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEMPERED_GAN_DATA", str(tmp_path / "empty"))
    assert run("reproduce", "--out", tmp_path / "p", "--rows", "dcgan-mnist,lsgan-celeba,wgan-gp-cifar10,lsgan-mnist",
               "--scale", 0.00002, *TINY) == 2
    lines = errors(capsys)
    assert len(lines) == 3, lines                                # mnist once, though two rows need it
    for name, line in zip(("mnist", "celeba", "cifar10"), lines):
        assert line.startswith(f"tempered-gan: error: {name}: ") and str(tmp_path / "empty" / name) in line
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("argv,message", [
    (["--scale", 0], "--scale must be in (0, 1]"),
    (["--scale", 2], "--scale must be in (0, 1]"),
    (["--rows", "dcgan-svhn"], "unknown row dcgan-svhn"),
    (["--dataset", "mnist"], "each row sets --dataset itself"),
    (["--steps", 10], "each row sets --steps itself"),
    (["--fid-features", "points"], "not 'points'"),
    (["--shard", "3/3"], "I must be 0 … N−1"),
])
def test_reproduce_bad_options(tmp_path, capsys, argv, message):
    assert run("reproduce", "--out", tmp_path / "p", *argv) == 2
    lines = errors(capsys)
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "p").exists()
