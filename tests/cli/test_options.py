"""Every option that --help lists reaches what it controls, and --help is grouped by topic.

Each option gets a check that would fail if the option were parsed and then ignored:
the object it configures (network, optimiser, schedule, tempering) is built through the
command line's own path (parse → TrainConfig → resolve → Trainer) and compared with the
default, or a run shows the file it controls. Options whose effect another test already
pins are listed in PINNED_ELSEWHERE with that test; a test here checks the list is complete.
"""
import argparse
import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY_IMAGES_ARGS, TINY_POINTS_ARGS
from torch import nn

from tempered_gan.cli.main import build_parser, main
from tempered_gan.cli.options import COMPARE_SETS, GROUPS, HELP, config_from_args, help_of
from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import data_of
from tempered_gan.errors import UserError
from tempered_gan.method.exits import TEMPERED, Fading, Reconstructing
from tempered_gan.method.tempering import GaussianBlur, InstanceNoise, Tempering
from tempered_gan.training import device as device_module
from tempered_gan.training import loop as train_module
from tempered_gan.training import snapshots
from tempered_gan.training.trainer import Trainer

TINY = TINY_POINTS_ARGS
TINY_MNIST = [*TINY_IMAGES_ARGS]

# Options whose effect an existing test pins: flag → (command, "file::test").
PINNED_ELSEWHERE = {
    ("train", "--out"): "test_cli.py::test_a_run_writes_config_metrics_samples_and_checkpoint",
    ("train", "--overwrite"): "test_cli.py::test_existing_run_is_kept_without_overwrite",
    ("train", "--dry-run"): "test_cli.py::test_dry_run_prints_resolved_config_and_writes_nothing",
    ("train", "--resume"): "test_cli.py::test_resume_is_bit_identical_on_points",
    ("train", "--cuda-graphs"): "test_cuda_graphs.py::test_graph_replays_the_eager_iteration",
    ("compare", "--out"): "test_compare.py::test_compare_writes_every_report_item",
    ("compare", "--jobs"): "test_compare.py::test_parallel_jobs_train_the_same_runs_with_a_log_each",
    ("compare", "--fail-factor"): "test_compare.py::test_summary_table_by_hand",
    ("compare", "--fail-fid"): "test_compare.py::test_summary_table_by_hand",
    ("compare", "--seeds"): "test_compare.py::test_arms_of_a_seed_start_from_identical_weights",
    ("compare", "--arms"): "test_compare.py::test_compare_writes_every_report_item",
    ("reproduce", "--out"): "test_reproduce.py::test_reproduce_scaled_runs_end_to_end_beside_the_papers_numbers",
    ("reproduce", "--rows"): "test_reproduce.py::test_reproduce_scaled_runs_end_to_end_beside_the_papers_numbers",
    ("reproduce", "--scale"): "test_reproduce.py::test_reproduce_scaled_runs_end_to_end_beside_the_papers_numbers",
    ("reproduce", "--report-only"): "test_reproduce.py::test_reproduce_scaled_runs_end_to_end_beside_the_papers_numbers",
    ("reproduce", "--inception-weights"): "test_reproduce.py::test_missing_inception_weights_is_one_line_before_anything",
    ("train", "--dinov2-weights"): "test_dinov2.py::test_train_and_eval_score_with_the_dinov2_file_they_are_given",
    ("eval", "--dinov2-weights"): "test_dinov2.py::test_train_and_eval_score_with_the_dinov2_file_they_are_given",
    ("train", "--spectral-norm"): "test_stabilisers.py::test_spectral_norm_bounds_every_layer_of_d_and_leaves_g_alone",
    ("train", "--diffaugment"):
        "test_stabilisers.py::test_diffaugment_shows_d_both_inputs_augmented_in_both_steps_and_gradients_reach_g",
    ("train", "--blur-both"): "test_stabilisers.py::test_the_blur_both_arm_ends_at_k_and_its_flag_needs_the_blur",
    ("train", "--config"): "test_cli.py::test_a_saved_configuration_starts_a_new_run_with_what_the_command_line_changes",
    ("train", "--wandb"): "test_wandb.py::test_an_offline_run_holds_the_scalars_the_configuration_and_the_sample_grids",
    ("compare", "--config"): "test_options.py::test_compare_and_sweep_start_from_a_configuration_file",
}


def run(*argv):
    return main([str(a) for a in argv])


def listed_options(command: str) -> list[str]:
    """The long options that ``tempered-gan COMMAND --help`` shows."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [s for a in sub._actions if a.help != argparse.SUPPRESS for s in a.option_strings
            if s.startswith("--") and s not in ("--help", "--no-progress")]


def help_sections(command: str, capsys) -> dict[str, str]:
    assert run(command, "--help") == 0
    text = capsys.readouterr().out
    sections, title = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
            sections[title] = ""
        elif title:
            sections[title] += line + "\n"
    return sections


# --- --help grouped by topic ------------------------------------------------------

TRAIN_TOPICS = ["options", "data", "run", "method: the GAN and what tempers the real data",
                "how the lens exits after K", "networks", "optimiser", "what else steadies D (baselines)",
                "logging, samples and checkpoints",
                "evaluation", "speed and device"]


def test_train_help_is_grouped_by_topic(capsys):
    sections = help_sections("train", capsys)
    assert list(sections) == TRAIN_TOPICS
    where = {"--dataset": "data", "--steps": "run", "--seed": "run", "--out": "run", "--resume": "run",
             "--schedule": "method", "--k": "method", "--tempering": "method", "--lens-exit": "how the lens exits",
             "--lens-exit-patience": "how the lens exits", "--width": "networks", "--lens-blocks": "networks",
             "--lr": "optimiser", "--beta2": "optimiser", "--critic-steps": "optimiser", "--log-every": "logging",
             "--progress": "logging", "--eval-every": "evaluation", "--fid-features": "evaluation",
             "--device": "speed", "--amp": "speed"}
    for flag, topic in where.items():
        holding = [t for t, body in sections.items() if re.search(rf"^  {flag}(?=[ ,]|$)", body, flags=re.M)]
        assert len(holding) == 1 and holding[0].startswith(topic), (flag, holding)
    assert re.findall(r"--[a-z-]+", sections["options"]) == ["--help"]


def test_every_configuration_option_is_in_exactly_one_group_and_names_its_default():
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(f.name for f in dataclasses.fields(TrainConfig))
    assert len(grouped) == len(set(grouped))
    for name in grouped:
        assert "default" in HELP[name], name


def test_help_names_the_papers_value_where_the_default_differs():
    assert "converge (the paper's" in help_of("lens_exit") and "(default: drop)" in help_of("lens_exit")
    assert "RMSProp" in help_of("optimizer") and "(default: adam)" in help_of("optimizer")
    assert "inception (the paper's" in help_of("fid_features") and "classifier" in help_of("fid_features")
    assert "the paper: 32 or 64" in help_of("batch_size")
    assert "10000, the paper's" in help_of("k") and "the paper gives no number" in help_of("width")


# Options whose default is a rule, not a value: the help states the rule, checked here against the configuration.
RULES = {"k": lambda c: c.k == (c.steps // 2 if c.dataset.startswith("mixture") else 10_000),
         "lens_exit_steps": lambda c: c.lens_exit_steps == c.k // 2,
         "lens_lr": lambda c: c.lens_lr == c.lr,
         "sample_every": lambda c: c.sample_every == c.steps // 10,
         "checkpoint_every": lambda c: c.checkpoint_every == min(c.steps // 10, 5000)}
UNSET = ("data_dir", "skip_unreadable", "inception_weights", "dinov2_weights")   # no value: "the usual place", "stop"


@pytest.mark.parametrize("command", ["train", "compare", "sweep", "reproduce"])
def test_every_help_shows_the_default_the_configuration_resolves_to(command, capsys):
    from tempered_gan.studies.reproduce import ROW_OPTIONS
    assert run(command, "--help") == 0
    entries, flag = {}, None             # each option's help, its wrapped lines joined
    for line in capsys.readouterr().out.splitlines():
        found = re.match(r"^  (--[\w-]+)", line)
        if found:
            flag = found.group(1)
            entries[flag] = line[2 + len(flag):]
        elif flag and line.startswith("    "):
            entries[flag] += " " + line
        else:
            flag = None
    entries = {f: re.sub(r"(\w)- (\w)", r"\1-\2", " ".join(e.split())) for f, e in entries.items()}
    cases = {"": {"dataset": "mnist"}, "mixtures": {"dataset": "mixture-ring8"},
             "wgan-gp": {"dataset": "cifar10", "loss": "wgan-gp"}}
    resolved = {case: resolve(TrainConfig(**given)) for case, given in cases.items()}
    text = lambda v: "off" if v is False else f"{v:g}" if isinstance(v, float) else str(v)   # noqa: E731
    hidden = {"train": set(), "compare": set(COMPARE_SETS), "sweep": set(COMPARE_SETS),
              "reproduce": {*ROW_OPTIONS, "dinov2_weights", "fid_features"}}[command]   # its own FID features
    for name in (n for names in GROUPS.values() for n in names if n not in hidden and n != "eval_every"):
        flag = "--" + name.replace("_", "-")
        entry = entries[flag]
        if name in RULES:
            assert all(RULES[name](cfg) for cfg in resolved.values()), name
        elif name == "dataset":
            assert f"default: {TrainConfig().dataset}" in entry
        elif name == "noise_sigma" or name == "blur_sigma":
            value = getattr(resolve(TrainConfig(dataset="mnist", tempering=name.split("_")[0])), name)
            assert f"default {text(value)}" in entry, (name, entry)
        elif name not in UNSET:
            image = text(getattr(resolved[""], name))
            assert re.search(rf"default:? (follows --loss and --dataset: )?{re.escape(image)}\b", entry), (name, entry)
            for case in ("mixtures", "wgan-gp"):
                other = text(getattr(resolved[case], name))
                if other != image and name not in cases[case]:
                    assert re.search(rf"{re.escape(other)} for [a-z -]*{case}", entry), (name, case, entry)


def test_compare_eval_and_sample_help_are_grouped(capsys):
    compare = help_sections("compare", capsys)
    assert list(compare) == ["options", "comparison", *TRAIN_TOPICS[1:]]
    for flag in ("--preset", "--seeds", "--arms", "--jobs", "--fail-fid"):
        assert re.search(rf"^  {flag}(?=[ ,]|$)", compare["comparison"], flags=re.M), flag
    shown = "".join(compare.values())
    for name in COMPARE_SETS:                       # compare sets (and refuses) these: not listed
        assert not re.search(rf"^  --{name.replace('_', '-')}(?=[ ,]|$)", shown, flags=re.M), name
    assert list(help_sections("eval", capsys)) == ["positional arguments", "options", "evaluation",
                                                   "speed and device"]
    assert list(help_sections("sample", capsys)) == ["positional arguments", "options", "output", "speed and device"]


# --- every listed option reaches what it controls --------------------------------------

def trainer(*argv, data=None) -> Trainer:
    """A trainer built as `tempered-gan train ARGV` builds it."""
    cfg = resolve(config_from_args(build_parser().parse_args(["train", *map(str, argv)])))
    data = data if data is not None else data_of(cfg)
    return Trainer.create(cfg, data, device_module.pick_device(cfg.device))


def linears(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def first_losses(*argv, data=None) -> dict:
    return {k: v.clone() for k, v in trainer(*argv, data=data).step().items()}


def lr(opt) -> float:
    return opt.param_groups[0]["lr"]


def _lens_exit(ring):
    k = 4
    made = {e: trainer(*TINY, "--k", k, "--lens-exit", e, data=ring) for e in ("drop", "blend", "converge", "keep")}
    assert made["drop"].exits.exit_step == k and made["blend"].exits.exit_step == k + k // 2 - 1
    assert made["converge"].phase(k + 1) == Reconstructing(tolerance=made["converge"].cfg.lens_exit_tolerance)
    assert made["keep"].phase(k + 1) == Reconstructing(tolerance=None)
    assert made["blend"].phase(k + 1) == Fading() and made["converge"].exits.exit_step is None
    assert all(t.phase(k) == TEMPERED for t in made.values())


def _converge_exit(ring, *argv):
    t = trainer(*TINY, "--k", 1, "--lens-exit", "converge", *argv, data=ring)
    for _ in range(4):
        t.step()
    return int(t.below_tolerance), t.exits.may_exit(t.step_count) and int(t.below_tolerance) >= t.exits.patience


def _folder(mnist_dir, bad: bool = False):
    """A folder of 6 images (and one unreadable file with ``bad``) beside the written MNIST."""
    from PIL import Image

    root = Path(mnist_dir).parent / ("imgs-bad" if bad else "imgs")
    root.mkdir(exist_ok=True)
    for i in range(6):
        Image.new("RGB", (40 + i, 50), (40 * i, 0, 0)).save(root / f"{i}.png")
    if bad:
        (root / "bad.png").write_bytes(b"not an image")
    return root


def _skips(mnist_dir) -> bool:
    argv = ["--dataset", "folder", "--data-dir", _folder(mnist_dir, bad=True), "--batch-size", 4, "--width", 4,
            "--lens-width", 4, "--lens-blocks", 1]
    with pytest.raises(UserError, match="cannot read image"):
        trainer(*argv)
    return len(trainer(*argv, "--skip-unreadable").data) == 6


def _checks(ring, mnist_dir):
    """flag → a check that fails if the flag is ignored."""
    mnist = ["--data-dir", mnist_dir, *TINY_MNIST]
    base = trainer(*TINY, data=ring)
    return {
        "--dataset": lambda: trainer(*TINY, "--dataset", "mixture-grid25").data.name == "mixture-grid25",
        "--data-dir": lambda: len(trainer(*mnist).data) == 40,     # the 40 images written there
        "--resolution": lambda: (lambda t: t.data.shape == (3, 64, 64) and t.G(t._z()).shape[-2:] == (64, 64))(
            trainer("--dataset", "folder", "--data-dir", _folder(mnist_dir), "--resolution", 64, "--batch-size", 4,
                    "--width", 4, "--lens-width", 4, "--lens-blocks", 1)),
        "--skip-unreadable": lambda: _skips(mnist_dir),
        "--g-ema": lambda: (lambda t: t.G_ema is not None and t.cfg.g_ema == 0.5 and t.sampler_net is t.G_ema)(
            trainer(*TINY, "--g-ema", 0.5, data=ring)) and base.G_ema is None,
        "--loss": lambda: not torch.equal(first_losses(*TINY, "--loss", "lsgan", data=ring)["loss_d"],
                                          first_losses(*TINY, data=ring)["loss_d"]),
        "--schedule": lambda: (trainer(*TINY, "--schedule", "constant", "--k", 4, data=ring).tempering.schedule(4) == 1.0
                           and base.tempering.schedule(base.cfg.k) == 0.0),
        "--tempering": lambda: (isinstance(base.tempering, Tempering)
                                and not trainer(*TINY, "--tempering", "none", data=ring).tempering.tempers
                                and isinstance(trainer(*TINY, "--tempering", "noise", data=ring).tempering,
                                               InstanceNoise)
                                and isinstance(trainer(*mnist, "--tempering", "blur").tempering, GaussianBlur)),
        "--noise-sigma": lambda: trainer(*TINY, "--tempering", "noise", "--noise-sigma", 0.25,
                                         data=ring).tempering.sigma(0) == 0.25,
        "--blur-sigma": lambda: trainer(*mnist, "--tempering", "blur", "--blur-sigma", 0.5).tempering.sigma(0) == 0.5,
        "--k": lambda: (lambda s: s(7) == 0.0 and s(6) > 0.0)(trainer(*TINY, "--k", 7, data=ring).tempering.schedule),
        "--lambda-value": lambda: trainer(*TINY, "--schedule", "constant", "--lambda-value", 0.25,
                                          data=ring).tempering.schedule(1) == 0.25,
        # ‖X − L(X)‖² summed over a point's 2 coordinates is twice the mean, on the same first batch
        "--reconstruction": lambda: torch.allclose(first_losses(*TINY, "--reconstruction", "sum", data=ring)["loss_lens_rec"],
                                                   2 * first_losses(*TINY, data=ring)["loss_lens_rec"]),
        "--lens-exit": lambda: _lens_exit(ring) is None,
        "--lens-exit-steps": lambda: (lambda t: t.exits.exit_step == 4 + 2 and t.exits.alpha(5) == pytest.approx(2 / 3))(
            trainer(*TINY, "--k", 4, "--lens-exit", "blend", "--lens-exit-steps", 3, data=ring)),
        "--lens-exit-tolerance": lambda: (
            _converge_exit(ring, "--lens-exit-tolerance", 1e9, "--lens-exit-patience", 3) == (3, True)
            and _converge_exit(ring, "--lens-exit-tolerance", 1e-30, "--lens-exit-patience", 3) == (0, False)),
        "--lens-exit-patience": lambda: (
            _converge_exit(ring, "--lens-exit-tolerance", 1e9, "--lens-exit-patience", 4) == (3, False)),
        "--arch": lambda: (any(isinstance(m, nn.BatchNorm2d) for m in trainer(*mnist).D.modules())
                           and not any(isinstance(m, nn.BatchNorm2d)
                                       for m in trainer(*mnist, "--arch", "lsgan").D.modules())),
        "--width": lambda: linears(trainer(*TINY, "--width", 12, data=ring).G)[0].out_features == 12,
        "--z-dim": lambda: linears(trainer(*TINY, "--z-dim", 5, data=ring).G)[0].in_features == 5,
        "--lens-width": lambda: linears(trainer(*TINY, "--lens-width", 6, data=ring).lens)[0].out_features == 6,
        "--lens-blocks": lambda: len(trainer(*TINY, "--lens-blocks", 3, data=ring).lens.f) == 3 + 3,
        "--lens-zero-init": lambda: (lambda x: torch.equal(trainer(*TINY, "--lens-zero-init", data=ring).lens(x), x)
                                     and not torch.equal(base.lens(x), x))(ring.batch(torch.arange(8))),
        "--optimizer": lambda: isinstance(trainer(*TINY, "--optimizer", "rmsprop", data=ring).opt_g,
                                          torch.optim.RMSprop) and isinstance(base.opt_g, torch.optim.Adam),
        "--lr": lambda: (lambda t: lr(t.opt_g) == lr(t.opt_d) == lr(t.tempering.optimizer) == 0.003)(
            trainer(*TINY, "--lr", 0.003, data=ring)),
        "--lens-lr": lambda: (lambda t: lr(t.tempering.optimizer) == 0.002 and lr(t.opt_g) == lr(base.opt_g))(
            trainer(*TINY, "--lens-lr", 0.002, data=ring)),
        "--beta1": lambda: trainer(*TINY, "--beta1", 0.3, data=ring).opt_d.param_groups[0]["betas"] == (0.3, 0.999),
        "--beta2": lambda: trainer(*TINY, "--beta2", 0.8, data=ring).opt_g.param_groups[0]["betas"] == (0.5, 0.8),
        "--critic-steps": lambda: (lambda t: t.step() is not None and t.sampler.position == 3 * 32)(
            trainer(*TINY, "--critic-steps", 3, data=ring)),
        "--gp-weight": lambda: not torch.equal(first_losses(*TINY, "--gp-weight", 5, data=ring)["loss_d"],
                                               first_losses(*TINY, data=ring)["loss_d"]),
        "--r1-gamma": lambda: not torch.equal(first_losses(*TINY, "--r1-gamma", 5, data=ring)["loss_d"],
                                              first_losses(*TINY, data=ring)["loss_d"]),
        "--batch-size": lambda: (lambda t: t.step() is not None and t.sampler.position == 16)(
            trainer(*TINY, "--batch-size", 16, data=ring)),
        "--seed": lambda: not torch.equal(linears(trainer(*TINY, "--seed", 1, data=ring).G)[0].weight,
                                          linears(base.G)[0].weight),
        "--amp": lambda: (lambda t: _autocast_on(t) and not _autocast_on(base))(trainer(*TINY, "--amp", "bf16",
                                                                                        data=ring)),
        "--channels-last": lambda: _channels_last(trainer(*mnist, "--channels-last")) and not _channels_last(
            trainer(*mnist)),
    }


def _channels_last(t: Trainer) -> bool:
    weight = [p for p in t.D.parameters() if p.dim() == 4][1]      # a convolution with several input channels
    return weight.is_contiguous(memory_format=torch.channels_last)


def _autocast_on(t: Trainer) -> bool:
    with t.autocast():
        return torch.is_autocast_enabled(t.device.type)


TRAINER_FLAGS = ["--dataset", "--data-dir", "--resolution", "--skip-unreadable",
                 "--loss", "--schedule", "--tempering", "--noise-sigma", "--blur-sigma", "--k",
                 "--lambda-value", "--reconstruction", "--lens-exit", "--lens-exit-steps",
                 "--lens-exit-tolerance", "--lens-exit-patience", "--arch", "--width", "--z-dim", "--lens-width",
                 "--lens-blocks", "--lens-zero-init", "--optimizer", "--lr", "--lens-lr", "--beta1", "--beta2",
                 "--critic-steps", "--gp-weight", "--r1-gamma", "--g-ema", "--batch-size", "--seed", "--amp", "--channels-last"]


@pytest.mark.parametrize("flag", TRAINER_FLAGS)
def test_a_training_option_reaches_the_object_it_configures(flag, ring, mnist_dir):
    assert _checks(ring, mnist_dir)[flag](), flag


def test_the_run_options_reach_the_files_they_control(tmp_path, capsys, monkeypatch):
    """--steps, --log-every, --sample-every, --checkpoint-every, --eval-every, --fid-samples, --fid-features."""
    saved = []
    original = train_module.save_checkpoint
    monkeypatch.setattr(train_module, "save_checkpoint", lambda path, state: (saved.append(state["step"]),
                                                                               original(path, state)))
    out = tmp_path / "run"
    assert run("train", *TINY, "--steps", 6, "--log-every", 3, "--sample-every", 2, "--checkpoint-every", 4,
               "--eval-every", 3, "--fid-samples", 128, "--fid-features", "points", "--out", out) == 0
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss_d" in r] == [3, 6]
    evals = [r for r in records if "fid" in r]
    assert [r["step"] for r in evals] == [3, 6] and all(r["samples"] == 128 for r in evals)
    assert all(r["features"].startswith("raw 2-d coordinates") for r in evals)
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"step_{s:07d}.png" for s in (2, 4, 6)]
    assert saved == [4, 6] and torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6


def test_inception_weights_reach_the_evaluator(tmp_path, mnist_dir, capsys):
    missing = tmp_path / "my-inception.pth"
    assert run("train", *TINY_MNIST, "--data-dir", mnist_dir, "--eval-every", 2, "--fid-features", "inception",
               "--inception-weights", missing, "--out", tmp_path / "run") == 2
    assert str(missing) in capsys.readouterr().err


def test_device_reaches_the_trainer(ring, monkeypatch):
    asked = []
    original = device_module.pick_device
    monkeypatch.setattr(device_module, "pick_device", lambda name: asked.append(name) or original(name))
    assert trainer(*TINY, "--device", "cpu", data=ring).device == torch.device("cpu") and asked == ["cpu"]
    trainer(*TINY, data=ring)
    assert asked == ["cpu", "auto"]


def test_progress_chooses_between_a_bar_and_lines(tmp_path, capsys):
    for choice, bar, lines in (("--progress", True, False), ("--no-progress", False, False), (None, False, True)):
        argv = ["train", *TINY, "--steps", 4, "--log-every", 2, "--out", tmp_path / str(choice)]
        assert run(*argv, *([choice] if choice else [])) == 0
        err = capsys.readouterr().err
        assert ("4/4" in err) == bar and ("\nstep=2 " in err) == lines, (choice, err)


COMPARE_VALUES = {
    "--dataset": "mixture-grid25", "--resolution": 32, "--g-ema": 0.5,
    "--k": 3, "--steps": 9, "--batch-size": 16, "--width": 8, "--z-dim": 3,
    "--lens-width": 4, "--lens-blocks": 1, "--reconstruction": "sum", "--lens-exit": "blend", "--lens-exit-steps": 2,
    "--lens-exit-tolerance": 0.5, "--lens-exit-patience": 7, "--optimizer": "rmsprop", "--lr": 0.01, "--lens-lr": 0.02,
    "--beta1": 0.1, "--beta2": 0.2, "--critic-steps": 2, "--gp-weight": 1.5, "--r1-gamma": 2.5, "--log-every": 3,
    "--sample-every": 4,
    "--checkpoint-every": 5, "--eval-every": 6, "--fid-samples": 64, "--fid-features": "points",
    "--inception-weights": "w.pth", "--dinov2-weights": "v.pth", "--device": "cpu", "--amp": "bf16", "--arch": "mlp",
    "--data-dir": "d",
    "--loss": "lsgan", "--noise-sigma": 0.3, "--diffaugment": "color", "--wandb": "project"}
COMPARE_SWITCHES = ["--lens-zero-init", "--channels-last", "--cuda-graphs", "--skip-unreadable", "--spectral-norm",
                    "--blur-both"]
# compare's own options, and those tested in a call of their own below
COMPARE_OWN = {"--out", "--preset", "--seeds", "--arms", "--fail-factor", "--fail-fid", "--jobs", "--progress", "--config",
               "--blur-sigma", "--reference", "--fail-modes", "--shard", "--report-only"}


def test_compare_and_sweep_start_from_a_configuration_file(tmp_path, monkeypatch):
    from tempered_gan.cli import compare as compare_command
    from tempered_gan.cli import sweep as sweep_command
    seen = {}
    monkeypatch.setattr(compare_command, "compare", lambda base, *a, **kw: seen.update(compare=base) or None)
    monkeypatch.setattr(sweep_command, "sweep", lambda base, *a, **kw: seen.update(sweep=base) or None)
    path = tmp_path / "base.toml"
    path.write_text('dataset = "mixture-grid25"\nwidth = 24\nlr = 0.003\n')
    assert run("compare", "--out", tmp_path / "c", "--config", path, "--lr", 0.002) == 0
    assert run("sweep", "--out", tmp_path / "s", "--config", path, "--grid", "beta1=0,0.5", "--fail-fid", 1) == 0
    for base in seen.values():
        assert (base.dataset, base.width, base.lr) == ("mixture-grid25", 24, 0.002 if base is seen["compare"] else 0.003)


def test_compare_passes_every_listed_option_on(tmp_path, monkeypatch):
    """compare's configuration options go into every run's configuration (what a run does with
    them is pinned for train above), and its own options reach compare()."""
    from tempered_gan.cli import compare as command  # the study the compare command calls
    seen = {}
    monkeypatch.setattr(command, "compare", lambda base, arms, seeds, out, **kw: seen.update(
        base=base, arms=arms, seeds=seeds, out=out, **kw) or out / "report.md")
    field = lambda flag: getattr(seen["base"], flag[2:].replace("-", "_"))   # noqa: E731
    assert run("compare", "--out", tmp_path, "--preset", "cpu-ring8", "--seeds", 2, "--arms", "none,noise",
               "--fail-factor", 3, "--jobs", 2, "--progress", "--reference", "noise", "--fail-modes", 7,
               "--shard", "1/2", *[x for kv in COMPARE_VALUES.items() for x in kv], *COMPARE_SWITCHES) == 0
    assert (seen["reference"], seen["fail_modes"], str(seen["shard"]), seen["report_only"]) == ("noise", 7, "1/2", False)
    for flag, value in COMPARE_VALUES.items():
        assert field(flag) == value, flag
    assert all(field(flag) is True for flag in COMPARE_SWITCHES)
    assert ([a.name for a in seen["arms"]], seen["seeds"], seen["fail_factor"], seen["jobs"]) == (["none", "noise"], [0, 1],
                                                                                                 3.0, 2)
    assert seen["out"] == tmp_path and seen["progress"] is True and seen["fail_fid"] == 0.1    # the preset's fail-fid
    assert run("compare", "--out", tmp_path, "--preset", "cpu-ring8", "--fail-fid", 0.5) == 0
    assert seen["fail_fid"] == 0.5 and seen["base"].steps == 3000 and seen["seeds"] == [0, 1, 2]  # the preset's rest
    assert run("compare", "--out", tmp_path, "--keep-lens", "--arms", "sine") == 0 and field("--lens-exit") == "keep"
    assert run("compare", "--out", tmp_path, "--dataset", "mnist", "--blur-sigma", 0.7, "--arms", "blur") == 0
    assert field("--blur-sigma") == 0.7
    assert run("compare", "--out", tmp_path, "--report-only") == 0 and seen["report_only"] is True
    assert set(listed_options("compare")) == set(COMPARE_VALUES) | set(COMPARE_SWITCHES) | COMPARE_OWN


def test_eval_options_reach_the_evaluation(tmp_path, mnist_dir, capsys, monkeypatch):
    out = tmp_path / "run"
    assert run("train", *TINY, "--steps", 2, "--out", out) == 0
    asked = []
    original = device_module.pick_device
    monkeypatch.setattr(device_module, "pick_device", lambda name: asked.append(name) or original(name))
    capsys.readouterr()
    assert run("eval", out, "--fid-samples", 100, "--fid-features", "points", "--device", "cpu") == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["samples"] == 100 and scores["features"].startswith("raw 2-d") and "cpu" in asked
    images = tmp_path / "images"
    assert run("train", *TINY_MNIST, "--data-dir", mnist_dir, "--steps", 2, "--out", images) == 0
    capsys.readouterr()
    missing = tmp_path / "my-inception.pth"
    assert run("eval", images, "--fid-features", "inception", "--inception-weights", missing) == 2
    assert str(missing) in capsys.readouterr().err           # the file asked for is the one looked for


def test_sample_options_reach_the_panel(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY, "--steps", 2, "--out", out) == 0
    drawn = {}
    monkeypatch.setattr(snapshots, "save_point_panel", lambda path, fake, *rest: drawn.update(path=path, n=len(fake)))
    asked = []
    original = device_module.pick_device
    monkeypatch.setattr(device_module, "pick_device", lambda name: asked.append(name) or original(name))
    assert run("sample", out, "--out", tmp_path / "grid.png", "--count", 5, "--device", "cpu") == 0
    assert drawn == {"path": tmp_path / "grid.png", "n": 5} and "cpu" in asked


def test_reproduce_passes_every_listed_option_on(tmp_path, monkeypatch):
    """reproduce's configuration options become every row's overrides, and its own options reach reproduce()."""
    from tempered_gan.cli import reproduce as command  # the study the reproduce command calls
    seen = {}
    monkeypatch.setattr(command, "reproduce", lambda rows, out, **kw: seen.update(rows=rows, out=out, **kw) or None)
    values = {**REPRODUCE_VALUES, "--blur-sigma": 0.7}
    assert run("reproduce", "--out", tmp_path, "--rows", "lsgan-mnist", "--scale", 0.5, "--seeds", 2, "--arms",
               "none,noise", "--jobs", 2, "--shard", "1/3", "--progress", "--fid-features", "classifier",
               *[x for kv in values.items() for x in kv], *COMPARE_SWITCHES) == 0
    assert (seen["rows"], seen["out"], seen["scale"], seen["seeds"], seen["arms"], seen["jobs"], str(seen["shard"])) == \
        (["lsgan-mnist"], tmp_path, 0.5, 2, ["none", "noise"], 2, "1/3")
    assert seen["progress"] is True and seen["fid_features"] == "classifier"
    for flag, value in values.items():
        assert seen["overrides"][flag[2:].replace("-", "_")] == value, flag
    assert all(seen["overrides"][flag[2:].replace("-", "_")] is True for flag in COMPARE_SWITCHES)


# reproduce takes compare's configuration options but those each row sets itself (hidden, refused)
REPRODUCE_VALUES = {flag: value for flag, value in COMPARE_VALUES.items()
                    if flag[2:].replace("-", "_") not in ("dataset", "loss", "steps", "k", "eval_every", "data_dir",
                                                          "fid_features", "inception_weights", "dinov2_weights")}
REPRODUCE_OWN = {"--rows", "--scale", "--seeds", "--arms", "--jobs", "--shard", "--progress", "--fid-features",
                 "--blur-sigma"}


# --- the inventory: nothing listed is left unchecked -----------------------------------

CHECKED_HERE = {
    "train": set(TRAINER_FLAGS) | {"--steps", "--log-every", "--sample-every", "--checkpoint-every", "--eval-every",
                                   "--fid-samples", "--fid-features", "--inception-weights", "--device", "--progress"},
    "compare": set(COMPARE_VALUES) | set(COMPARE_SWITCHES) | COMPARE_OWN,
    "eval": {"--fid-samples", "--fid-features", "--inception-weights", "--device"},
    "sample": {"--out", "--count", "--device", "--n", "--format"},   # --n, --format: test_sample_export.py
    "reproduce": set(REPRODUCE_VALUES) | set(COMPARE_SWITCHES) | REPRODUCE_OWN,
}


@pytest.mark.parametrize("command", ["train", "compare", "eval", "sample", "reproduce"])
def test_every_listed_option_has_a_test_that_pins_its_effect(command):
    listed, here = set(listed_options(command)), CHECKED_HERE[command]
    elsewhere = {f: t for (c, f), t in PINNED_ELSEWHERE.items() if c == command}
    assert listed <= here | set(elsewhere), sorted(listed - here - set(elsewhere))
    for flag, where in elsewhere.items():
        path, name = where.split("::")
        assert re.search(rf"^def {name}\(", next((ROOT / "tests").rglob(path)).read_text(), flags=re.M), (flag, where)
