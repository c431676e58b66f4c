"""What a run looks like at its current step: sample panels (G(Z) | what D sees
as real | X) with their captions, and its FID and mode coverage; and the trainer
of a saved run, for ``tempered-gan eval`` and ``sample``.

Nothing here changes the run: samples come at fixed noise and a fixed real batch,
in eval mode, from generators of their own.
"""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import torch

from tempered_gan.config.train_config import CONFIG, TrainConfig, resolve
from tempered_gan.errors import UserError, writing
from tempered_gan.method.nets import eval_mode
from tempered_gan.training.checkpoint import CHECKPOINT, load_checkpoint
from tempered_gan.training.device import preflight
from tempered_gan.training.randomness import seed_for
from tempered_gan.training.run_folder import open_run
from tempered_gan.training.run_log import RunLog, save_image_panel, save_point_panel
from tempered_gan.training.trainer import Trainer

GRID_SAMPLES = 64      # images in a sample grid
POINT_SAMPLES = 1024   # points in a 2-D scatter plot


@torch.no_grad()
def samples(trainer: Trainer, count: int = GRID_SAMPLES) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """G(Z), what D sees as real (L(X), L_α(X), noisy or blurred X; None
    without a tempering) and X, at fixed noise and a fixed real batch, in eval
    mode and from a generator of their own, so that drawing them changes no
    state of the run."""
    count = min(count, len(trainer.data))
    g = torch.Generator().manual_seed(seed_for(trainer.cfg.seed, "samples"))
    z = torch.randn(count, trainer.cfg.z_dim, generator=g).to(trainer.device)
    x = trainer.data.batch(torch.randperm(len(trainer.data), generator=g)[:count]).to(trainer.device)
    with eval_mode(trainer.sampler_net):
        tempered = None
        if trainer.tempering.tempers:
            t = trainer.step_count
            tempered = trainer.tempering.preview(x, trainer.tempering.schedule(t), trainer.exits.alpha(t), generator=g)
        return trainer.sampler_net(z), tempered, x


def sample_captions(trainer: Trainer) -> tuple[str, str]:
    """The title of a sample panel at the trainer's step and the name of its middle
    panel, which always shows what D sees as real at that step."""
    title, middle = _captions(trainer)
    return (f"{title}; G: moving average ({trainer.cfg.g_ema:g})" if trainer.G_ema is not None else title), middle


def _captions(trainer: Trainer) -> tuple[str, str]:
    t = trainer.step_count
    if trainer.tempering.tempers:
        return f"step {t}, λ = {trainer.tempering.schedule(t):.3f}", trainer.tempering.label
    if trainer.exited_at is not None:
        return (f"step {t}, {trainer.cfg.tempering} exited after step {trainer.exited_at}",
                "X: what D sees now")
    return f"step {t}, no tempering", "X: what D sees (no tempering)"


def write_sample_panel(trainer: Trainer, path: Path, count: int) -> torch.Tensor | None:
    """G(Z) | what D sees as real | X at the trainer's step, titled: a scatter plot
    for 2-D data, else image grids (returned, for TensorBoard). Once the tempering
    has left (or without one) D sees X, and the middle panel shows it."""
    fake, shown, real = samples(trainer, count)
    title, name = sample_captions(trainer)
    shown = real if shown is None else shown
    if trainer.data.kind == "points":
        save_point_panel(path, fake, shown, real, title, name)
        return None
    return save_image_panel(path, fake, shown, real, title, ("G(Z)", name, "X"))


def write_samples(trainer: Trainer, run_dir: Path, log: RunLog) -> Path:
    """The run's sample panel at this step, in ``run_dir/samples`` and TensorBoard."""
    folder = run_dir / "samples"
    with writing(folder):
        folder.mkdir(exist_ok=True)
    path = folder / f"step_{trainer.step_count:07d}.png"
    panel = write_sample_panel(trainer, path, POINT_SAMPLES if trainer.data.kind == "points" else GRID_SAMPLES)
    log.add_samples(path, panel, trainer.step_count)
    return path


EXPORT_FORMATS = ("grid", "png", "npz")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1], (N, C, H, W) → uint8 (N, H, W, C), as image files hold them."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def export_samples(trainer: Trainer, out: Path, count: int, fmt: str) -> Path:
    """``count`` samples G(Z) from the evaluation's own noise stream (the very samples ``eval``
    scores when ``count`` is the run's ``--fid-samples``): ``png``, a folder of numbered PNGs;
    ``npz``, one ``arr_0`` array, uint8 (N, H, W, C) for images, float32 (N, 2) for 2-D points.
    For pytorch-fid, clean-fid or torch-fidelity. The .npz is written atomically; an existing file
    or a folder that holds something is refused."""
    import numpy as np

    from tempered_gan.util.atomic_files import atomic_write_bytes

    if fmt == "png" and trainer.data.kind == "points":
        raise UserError("2-D points are not images: export them with --format npz")
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise UserError(f"{out} already exists; choose another --out")
    samples = trainer.generate(count)
    if fmt == "npz":
        array = samples.float().numpy() if trainer.data.kind == "points" else to_uint8(samples).numpy()
        buffer = io.BytesIO()
        np.savez(buffer, arr_0=array)
        with writing(out):
            out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, buffer.getvalue())
        return out
    from PIL import Image

    pixels = to_uint8(samples).numpy()
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(pixels):
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(out / f"{i:06d}.png")
    return out


def evaluate_run(trainer: Trainer, kid: bool = True) -> dict:
    """FID (and mode coverage where defined) of G against the real data X; ``kid=False``
    skips KID, the costly part on 2-D data (FID and coverage are the same either way)."""
    from tempered_gan.metrics import EvalSettings, evaluate

    scores = evaluate(trainer.generate, EvalSettings.of_run(trainer.cfg, trainer.device, kid))
    if trainer.G_ema is not None:   # say which weights were scored
        scores = {**scores, "generator": f"moving average of G (--g-ema {trainer.cfg.g_ema:g})"}
    return scores


def load_run(run_dir: Path, device: str | None = None, **evaluation) -> Trainer:
    """The trainer of a saved run, at its checkpoint (for eval and sample). The folder's lock is
    probed before it is read, so a run still training is named as busy. ``evaluation``: options
    that replace the run's own (``fid_features``, ``dinov2_weights``, …) before they are checked, so
    a weights file that has moved since training can be named anew."""
    from tempered_gan.data.loaders import data_of

    open_run(Path(run_dir))
    cfg = TrainConfig.load(Path(run_dir) / CONFIG)
    state = load_checkpoint(Path(run_dir) / CHECKPOINT)
    # --cuda-graphs is how a run trained, not what it is: eval and sample never step, and run anywhere.
    cfg = dataclasses.replace(cfg, device=device or cfg.device, cuda_graphs=False)
    if evaluation:
        cfg = resolve(dataclasses.replace(cfg, **evaluation))
    data = data_of(cfg)
    trainer = Trainer.create(cfg, data, preflight(cfg, data))
    if isinstance(state.get("rng"), list) and len(state["rng"]) > 1:
        # A run of several processes: eval and sample train nothing, so process 0's random states stand for all.
        state = {**state, "rng": state["rng"][:1]}
    trainer.load_state_dict(state)
    return trainer
