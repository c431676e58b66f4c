"""--wandb PROJECT: the log mirrored to Weights & Biases, offline here (WANDB_MODE=offline, no network)."""
import json
import sys

import pytest
from helpers import TINY_POINTS_ARGS

from tempered_gan.cli.main import main

pytest.importorskip("wandb")
ARGS = [*TINY_POINTS_ARGS, "--log-every", "5", "--sample-every", "10", "--k", "5", "--no-progress"]


@pytest.fixture()
def offline(tmp_path, monkeypatch):
    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": tmp_path / "wandb-config",
                       "WANDB_CACHE_DIR": tmp_path / "wandb-cache", "WANDB_DATA_DIR": tmp_path / "wandb-data"}.items():
        monkeypatch.setenv(key, str(value))


def run(*argv):
    return main([str(a) for a in argv])


def offline_runs(run_dir):
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_an_offline_run_holds_the_scalars_the_configuration_and_the_sample_grids(tmp_path, offline):
    out = tmp_path / "run"
    assert run("train", "--wandb", "demo", "--steps", 10, "--out", out, *ARGS) == 0
    (folder,) = offline_runs(out)
    run_id = json.loads((out / "wandb-run.json").read_text())["id"]
    assert folder.name.endswith(run_id)
    history = (folder / f"run-{run_id}.wandb").read_bytes()
    for key in (b"loss_d", b"loss_g", b"lambda", b"fid", b"lens_width"):    # scalars, an evaluation, the config
        assert key in history, key
    grids = list((folder / "files" / "media" / "images").rglob("*.png"))
    assert len(grids) == 1 and grids[0].name.startswith("samples_10_")


def test_a_resumed_run_continues_its_wandb_run(tmp_path, offline):
    out = tmp_path / "run"
    assert run("train", "--wandb", "demo", "--steps", 5, "--out", out, *ARGS) == 0
    first = json.loads((out / "wandb-run.json").read_text())["id"]
    assert run("train", "--resume", out, "--steps", 10) == 0
    assert json.loads((out / "wandb-run.json").read_text())["id"] == first
    assert [f.name.rsplit("-", 1)[1] for f in offline_runs(out)] == [first, first]


def test_without_the_package_wandb_is_one_line_saying_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)             # import wandb raises ImportError
    assert run("train", "--wandb", "demo", "--steps", 2, "--out", tmp_path / "run", *ARGS) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tempered-gan: error: --wandb needs the wandb package: pip install 'tempered-gan[wandb]'"
    assert not (tmp_path / "run").exists()                       # refused before the folder was made
