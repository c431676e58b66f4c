"""Every command run eagerly on a device as a user runs it, a few seconds each, with its tensors on that device
(gpu_session.sh part 1, stage ``commands``; on the CPU: tests/benchmarks/test_cuda_commands.py, ``--device cpu``).
Through the command line (``python -m tempered_gan``, tiny nets): train with --tempering lens (sine), noise and
blur, FID during training; eval (with precision, recall, density, coverage), sample and sample --format npz of the
lens run; compare none,sine, one seed; a 2-cell sweep with the r1, sine+r1, sn and diffaug arms; train --resolution
64 on a folder with --g-ema; a colour run's eval with its per-channel scores; train --config of a saved
configuration; train --amp bf16; train --resume. Each must exit 0, record the asked device in config.json and save
G, D and the lens from that device. Then, in this process, a Trainer per tempering (and one with --amp bf16, one
with spectral norm and DiffAugment) runs 2 steps: every parameter, buffer, optimiser state, noise generator,
bookkeeping tensor, loss and sample-panel tensor must be on the device. On the CPU by design, not flagged: eager
Adam's step counts (PyTorch keeps them there unless capturable or fused) and ``Trainer.generate``'s samples (its
docstring). A line per check as it ends (name, ok or failed, seconds, first error line), then a summary; exit 1 if
any failed. Independent checks run side by side (--jobs); each command's output is in WORKDIR/logs/NAME.log.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import data_of
from tempered_gan.training.device import preflight
from tempered_gan.training.scalars import stacked
from tempered_gan.training.snapshots import samples
from tempered_gan.training.trainer import Trainer

TINY = dict(batch_size=16, width=16, z_dim=16, lens_width=8, lens_blocks=2)   # nets of a few seconds' runs


def placement_offender(items, device_type: str) -> str | None:
    """The first of ``items`` ((name, tensor or generator) pairs) not on ``device_type``, named, or None."""
    for name, value in items:
        if value.device.type != device_type:
            return f"{name} is on {value.device}, not {device_type}"
    return None


def named(prefix: str, source):
    """(prefix.name, tensor) for a module's parameters and buffers, or for a state dict's tensors."""
    pairs = [*source.named_parameters(), *source.named_buffers()] if isinstance(source, torch.nn.Module) else source.items()
    return ((f"{prefix}.{name}", value) for name, value in pairs if torch.is_tensor(value))


def optimizer_items(prefix: str, opt):
    """The optimiser's state tensors; eager Adam's step counts stay on the CPU by design."""
    for group in opt.param_groups:
        on_device = bool(group.get("capturable") or group.get("fused"))
        for i, p in enumerate(group["params"]):
            yield from ((f"{prefix}.state[{i}].{key}", value) for key, value in opt.state.get(p, {}).items()
                        if torch.is_tensor(value) and (key != "step" or on_device))


def trainer_items(trainer, losses):
    """Everything of a Trainer that must live on its device, after a step that returned ``losses``."""
    yield from (*named("G", trainer.G), *named("D", trainer.D))
    yield from (*optimizer_items("opt_g", trainer.opt_g), *optimizer_items("opt_d", trainer.opt_d))
    if trainer.lens is not None:
        yield from (*named("lens", trainer.lens), *optimizer_items("opt_lens", trainer.tempering.optimizer))
    yield from zip(("noise generator", "penalty generator", "instance-noise generator"), trainer.generators)
    yield from (("below_tolerance", trainer.below_tolerance), *trainer.logged.tensors(),
                ("first_bad", trainer.first_bad), *((f"the step's {k}", v) for k, v in losses.items()))
    fake, tempered, real = samples(trainer, 8)    # the sample panel's tensors, tempering.preview included
    yield from (("samples G(Z)", fake), ("samples T(X)", tempered), ("samples X", real))


def in_process(args, tempering: str, amp: str = "none", **options) -> None:
    """A Trainer on the asked device runs 2 steps; its tensors must all be there."""
    cfg = resolve(TrainConfig(dataset=args.dataset, data_dir=args.data_dir, device=args.device, tempering=tempering,
                              amp=amp, k=10, **TINY, **options))
    data = data_of(cfg)
    trainer = Trainer.create(cfg, data, preflight(cfg, data))
    losses = [trainer.step() for _ in range(2)][-1]
    problem = placement_offender(trainer_items(trainer, losses), torch.device(args.device).type)
    assert problem is None, problem
    assert torch.isfinite(stacked(losses)).all(), f"losses {stacked(losses).tolist()}"
    made = trainer.generate(5)   # on the CPU by design
    assert made.device.type == "cpu" and made.shape == (5, *data.shape), f"generate: {made.device}, {tuple(made.shape)}"


def cli(args, name: str, *argv) -> str:
    """``python -m tempered_gan ARGV`` as a user runs it, its output in logs/NAME.log; it must exit 0. Its stdout."""
    try:
        result = subprocess.run([sys.executable, "-m", "tempered_gan", *map(str, argv)], capture_output=True,
                                text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no answer after {args.timeout:.0f}s") from None
    log = args.workdir / "logs" / f"{name.replace(' ', '-')}.log"
    log.write_text(f"$ tempered-gan {' '.join(map(str, argv))}\n{result.stdout}{result.stderr}exit {result.returncode}\n")
    last = [line for line in result.stderr.splitlines() if line.strip()][-1:] or ["(no output)"]
    assert result.returncode == 0, f"exit {result.returncode}: {last[0]} (see {log})"
    return result.stdout


def on_device(args, run: Path) -> None:
    """config.json records the asked device; the checkpoint's weights were saved from it."""
    recorded = json.loads((run / "config.json").read_text())["device"]
    assert recorded == args.device, f"{run.name}/config.json records device {recorded!r}, not {args.device!r}"
    state = torch.load(run / "checkpoint.pt", weights_only=True)   # tensors come back on the device they were saved from
    items = [item for net in ("G", "D", "lens") for item in named(net, state[net] or {})]
    problem = placement_offender(items, torch.device(args.device).type)
    assert problem is None, f"{run.name}/checkpoint.pt: {problem}"


def train(args, name: str, *options) -> None:
    cli(args, f"train {name}", "train", *args.common, "--out", args.workdir / name, "--overwrite", *options)
    on_device(args, args.workdir / name)


def evaluate(args) -> None:
    out = json.loads(cli(args, "eval lens", "eval", args.workdir / "lens"))
    assert out["step"] == args.steps and math.isfinite(out["fid"]), f"eval printed {out}"
    missing = [k for k in ("precision", "recall", "density", "coverage") if not math.isfinite(out.get(k, math.nan))]
    assert not missing, f"eval printed no finite {', '.join(missing)}"


def export(args) -> None:
    path = args.workdir / "samples.npz"
    cli(args, "sample npz", "sample", args.workdir / "lens", "--format", "npz", "--n", 16, "--out", path)
    import numpy as np
    shape = np.load(path)["arr_0"].shape
    assert shape[0] == 16 and shape[-1] in (1, 3), f"samples.npz holds {shape}"


def train_64(args) -> None:
    """``train --resolution 64`` on a folder of mixed-size images, then its samples as (N, 64, 64, 3)."""
    import numpy as np
    from PIL import Image

    folder = args.workdir / "images-64"
    rng = np.random.default_rng(0)
    for i in range(48):
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (60 + i, 100 - i, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    # No FID: at 64 px it needs the Inception weights, which the machine may not have (and cannot fetch).
    train(args, "resolution-64", "--dataset", "folder", "--data-dir", folder, "--resolution", 64, "--batch-size", 16,
          "--eval-every", 0, "--g-ema", 0.99)
    path = args.workdir / "samples-64.npz"
    cli(args, "sample 64", "sample", args.workdir / "resolution-64", "--format", "npz", "--n", 8, "--out", path)
    shape = np.load(path)["arr_0"].shape
    assert shape == (8, 64, 64, 3), f"samples-64.npz holds {shape}"


def sweep(args) -> None:
    out = args.workdir / "sweep"
    arms = ("none", "r1", "sine+r1", "sn", "diffaug")
    cli(args, "sweep", "sweep", *args.common, "--grid", "lr=1e-4,2e-4", "--arms", ",".join(arms), "--seeds", 1,
        "--fail-fid", 1e6, "--out", out)
    assert (out / "report.md").is_file() and (out / "map.png").is_file(), "no report.md or map.png"
    for cell in ("lr=0.0001", "lr=0.0002"):
        for arm in arms:
            on_device(args, out / "cells" / cell / "runs" / f"{arm}-s0")


def colour(args) -> None:
    """A Colour run (the data set's stacked version) and its eval: the per-channel scores, finite."""
    train(args, "colour", "--dataset", f"color-{args.dataset}")
    out = json.loads(cli(args, "eval colour", "eval", args.workdir / "colour"))
    keys = ("channel_fid_r", "channel_fid_g", "channel_fid_b", "channel_fid_bound", "channels_like_data")
    missing = [k for k in keys if not math.isfinite(out.get(k, math.nan))]
    assert not missing and out.get("partial_collapse") in (0, 1), f"eval printed no finite {', '.join(missing)}"


def from_config(args) -> None:
    """train --config of the lens run's saved configuration, with another seed: a new run, on the device."""
    cli(args, "train config", "train", "--config", args.workdir / "lens" / "config.json", "--seed", 7,
        "--out", args.workdir / "from-config", "--overwrite", "--no-progress")
    saved = json.loads((args.workdir / "from-config" / "config.json").read_text())
    assert saved["seed"] == 7, f"config.json records seed {saved['seed']}"
    on_device(args, args.workdir / "from-config")


def sample(args) -> None:
    cli(args, "sample lens", "sample", args.workdir / "lens", "--out", args.workdir / "grid.png")
    assert (args.workdir / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "grid.png is not a PNG"


def compare(args) -> None:
    out = args.workdir / "compare"
    cli(args, "compare", "compare", *args.common, "--arms", "none,sine", "--seeds", 1, "--out", out)
    assert (out / "report.md").is_file(), "no report.md"
    for arm in ("none", "sine"):
        on_device(args, out / "runs" / f"{arm}-s0")


def resume(args) -> None:
    more = args.steps + args.steps // 2
    cli(args, "train resume", "train", "--resume", args.workdir / "lens", "--steps", more, "--no-progress")
    on_device(args, args.workdir / "lens")
    last = json.loads((args.workdir / "lens" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == more, f"metrics.jsonl ends at step {last['step']}, not {more}"


# A chain's checks run one after another (eval, sample and resume need the lens run); chains run side by side.
CHAINS = [
    {"train lens": lambda a: train(a, "lens", "--tempering", "lens", "--schedule", "sine"), "eval lens": evaluate,
     "sample lens": sample, "sample npz": export, "train config": from_config, "train resume": resume},
    {"eval colour": colour},
    {"train noise": lambda a: train(a, "noise", "--tempering", "noise")},
    {"train blur": lambda a: train(a, "blur", "--tempering", "blur")},
    {"compare": compare},
    {"sweep": sweep},
    {"train 64": train_64},
    {"train bf16": lambda a: train(a, "bf16", "--amp", "bf16")},
    {"tensors lens": lambda a: in_process(a, "lens"), "tensors noise": lambda a: in_process(a, "noise"),
     "tensors blur": lambda a: in_process(a, "blur"), "tensors lens bf16": lambda a: in_process(a, "lens", "bf16"),
     "tensors sn diffaug": lambda a: in_process(a, "lens", spectral_norm=True, diffaugment="color,translation,cutout")},
]
CHECKS = {name: check for chain in CHAINS for name, check in chain.items()}


def run_chain(args, chain: list[str]) -> list[str]:
    """The chain's checks in order, a line each; after a failure the rest are not run. Returns the failed."""
    failed = []
    for name in chain:
        t0, error = time.perf_counter(), f"not run: {failed[0]} failed" if failed else ""
        try:
            if not failed:
                CHECKS[name](args)
        except Exception as exc:  # report it, go on with the other chains
            error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        failed += [name] if error else []
        line = f"{name:<18} {'failed' if error else 'ok':<6} {time.perf_counter() - t0:6.1f}s  {error}".rstrip()
        print(line + "\n", end="", flush=True)   # one write: lines of chains side by side never mix
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda", help="the device every command is asked to run on (default cuda)")
    parser.add_argument("--dataset", default="fashion-mnist", help="an image data set (default fashion-mnist)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--workdir", required=True, type=Path, help="run folders and logs/ (created)")
    parser.add_argument("--steps", type=int, default=40, help="per run (default 40); K at half; --resume adds half")
    parser.add_argument("--jobs", type=int, default=len(CHAINS), help="chains of checks run at once (default: all)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per command (default 120)")
    parser.add_argument("--only", help=f"comma-separated, from: {', '.join(CHECKS)} (default: all)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(CHECKS)
    if set(names) - set(CHECKS):
        parser.error(f"unknown checks: {', '.join(sorted(set(names) - set(CHECKS)))}")
    args.workdir, args.data_dir = args.workdir.resolve(), str(Path(args.data_dir).resolve())
    (args.workdir / "logs").mkdir(parents=True, exist_ok=True)
    half, tiny = max(1, args.steps // 2), [x for k, v in TINY.items() for x in ("--" + k.replace("_", "-"), v)]
    args.common = ["--dataset", args.dataset, "--data-dir", args.data_dir, "--device", args.device, *tiny,
                   "--steps", args.steps, "--k", half, "--log-every", half, "--sample-every", args.steps,
                   "--checkpoint-every", half, "--eval-every", args.steps, "--fid-samples", 128, "--no-progress"]
    start = time.perf_counter()
    print(f"cuda_commands: {len(names)} checks on {args.device}, torch {torch.__version__}", flush=True)
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        failed = sum(pool.map(lambda chain: run_chain(args, [n for n in chain if n in names]), CHAINS), [])
    print(f"cuda_commands: {len(names) - len(failed)} of {len(names)} ok in {time.perf_counter() - start:.0f}s"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
