"""What a run writes besides checkpoints: metrics.jsonl, TensorBoard events and
sample grids (generated | what D sees as real | real, at fixed noise and fixed data)."""
from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import torch

from tempered_gan.errors import UserError, WriteError, writing
from tempered_gan.util.atomic_files import atomic_write_bytes
from tempered_gan.util.renamed import LOG_KEYS, renamed

METRICS = "metrics.jsonl"
# What an evaluation was made of, not what it measured: constant along a run, so in metrics.jsonl,
# and in TensorBoard as text (once, and again when it changes), never as a flat curve.
SETTINGS = ("samples", "real_samples", "modes_total", "features", "generator")
SAMPLES = "samples/generated|lensed|real"   # the sample grids' name in TensorBoard (in W&B: "samples")


class RunLog:
    """Appends one JSON line per logged step and mirrors scalars to TensorBoard.

    On resume from step ``s`` the lines after ``s`` (written after the last
    checkpoint by a run that then died) are dropped, and TensorBoard is told to
    purge its events after ``s``, so that the curves are those of one run.
    """

    def __init__(self, run_dir: Path, resume_step: int = 0, mirror=None):
        self.run_dir = Path(run_dir)
        self.mirror = mirror             # a WandbRun (--wandb), or None
        self.path = self.run_dir / METRICS
        if resume_step and self.path.exists():
            lines = read_metric_lines(self.path)
            kept = [line for line, record in lines if record["step"] <= resume_step]
            atomic_write_bytes(self.path, "".join(line + "\n" for line in kept).encode())   # the old file or the new
        elif not resume_step:
            with writing(self.path):
                self.path.write_text("")
        from torch.utils.tensorboard import SummaryWriter  # here, not at import: the CLI's error paths stay quick

        with writing(self.run_dir / "tb"):
            self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=resume_step + 1 if resume_step else None)
        self.settings: dict = {}         # the evaluation settings last written as text

    def write(self, record: dict) -> None:
        """Append one line. A full disk may leave a torn last line, which
        :func:`read_metric_lines` drops; the lines before it stay."""
        with writing(self.path), open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        settings = {k: record[k] for k in SETTINGS if k in record}
        with writing(self.run_dir / "tb"):
            for key, value in record.items():
                if key == "step" or key in settings:
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self.tb.add_scalar(key, value, record["step"])
            if settings and settings != self.settings:
                self.tb.add_text("evaluation", ", ".join(f"{k}: {v}" for k, v in settings.items()), record["step"])
                self.settings = settings
        if self.mirror is not None:
            self.mirror.scalars(record, skip=set(SETTINGS))

    def add_samples(self, path: Path, panel: torch.Tensor | None, step: int) -> None:
        """A sample grid written to ``path``: to TensorBoard as the image ``panel`` (C, H, W) in [0, 1] (image
        data sets; None for 2-D points), and to the mirror as the file itself (every data set)."""
        if panel is not None:
            with writing(self.run_dir / "tb"):
                self.tb.add_image(SAMPLES, panel, step)
        if self.mirror is not None:
            self.mirror.image("samples", path, step)

    def close(self, quiet: bool = False) -> None:
        """Flush TensorBoard; ``quiet``: when the run already stopped on an error
        (e.g. a full disk), a failed flush must not hide it."""
        try:
            with writing(self.run_dir / "tb"):
                self.tb.close()
        except WriteError:
            if not quiet:
                raise
        finally:
            if self.mirror is not None:
                self.mirror.close()


def read_metric_lines(path: Path, *, warn: bool = True) -> list[tuple[str, dict]]:
    """The lines of a ``metrics.jsonl`` with their records, in order.

    A last line that is not a complete record (a run that died or ran out of
    disk while appending it) is dropped, with a note on stderr when ``warn``;
    the lines before it are all kept. Any other line that is not a record is a
    damaged file: one :class:`UserError`, and nothing is rewritten.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    raw = [line for line in text.split("\n") if line.strip(" \t\r\0")]
    out = []
    for number, line in enumerate(raw, start=1):
        record = _record(line)
        if record is None:
            if number < len(raw):
                raise UserError(f"{path}: line {number} is not a metrics record ({line[:40]!r}); "
                                "the file is damaged, fix or remove that line")
            if warn:
                print(f"tempered-gan: {path}: dropped a torn last line ({len(line)} characters, "
                      f"{line[:40]!r}…), left by a run that stopped while writing it", file=sys.stderr)
            break
        out.append((line, renamed(record, LOG_KEYS)))
    return out


def read_metrics(path: Path, *, warn: bool = True) -> list[dict]:
    """The records of a ``metrics.jsonl`` (see :func:`read_metric_lines`)."""
    return [record for _, record in read_metric_lines(path, warn=warn)]


def _record(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return record if isinstance(step, int) and not isinstance(step, bool) else None


def image_panel(fake: torch.Tensor, lensed: torch.Tensor | None, real: torch.Tensor, title: str = "",
                names: tuple[str, ...] = ()) -> torch.Tensor:
    """One (3, H, W) image in [0, 1]: G(Z) | L(X) | X (G(Z) | X without a middle
    batch), each an 8-wide grid; with ``title`` or ``names``, a white header
    holding the title and each grid's name above it."""
    from torchvision.utils import make_grid  # here, not at import: torchvision takes seconds to load

    grids = [make_grid(t.float().cpu().clamp(-1, 1), nrow=8, normalize=True, value_range=(-1, 1), pad_value=1)
             for t in (fake, lensed, real) if t is not None]
    height = max(g.shape[1] for g in grids)
    parts = []
    for g in grids:
        parts += [torch.nn.functional.pad(g, (0, 0, 0, height - g.shape[1]), value=1.0), torch.ones(3, height, 8)]
    panel = torch.cat(parts[:-1], dim=2)
    if not (title or names):
        return panel
    from PIL import Image, ImageDraw
    from torchvision.transforms.functional import pil_to_tensor, to_pil_image

    font, line = _font()
    canvas = Image.new("RGB", (panel.shape[2], panel.shape[1] + 2 * line + 4), "white")
    canvas.paste(to_pil_image(panel), (0, 2 * line + 4))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 1), title, fill="black", font=font)
    left = 0
    for g, name in zip(grids, names):
        draw.text((left + 2, line + 2), name, fill="black", font=font)
        left += g.shape[2] + 8
    return pil_to_tensor(canvas).float() / 255


def _font():
    """A font with Greek letters (λ, σ) and its line height: matplotlib's DejaVu Sans, which
    the scatter plots use too; PIL's built-in bitmap font (no Greek) if it is missing."""
    from PIL import ImageFont
    try:
        import matplotlib
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 12), 15
    except (ImportError, OSError):
        return ImageFont.load_default(), 14


def save_image_panel(path: Path, fake, lensed, real, title: str = "", names: tuple[str, ...] = ()) -> torch.Tensor:
    from torchvision.utils import save_image

    panel = image_panel(fake, lensed, real, title, names)
    buffer = io.BytesIO()
    save_image(panel, buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())   # never a half-written PNG on a full disk
    return panel


def save_figure(fig, path: Path, **options) -> None:
    """``fig.savefig(path)``, written atomically: a full disk leaves the old file (one WriteError)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", **options)
    atomic_write_bytes(path, buffer.getvalue())


def save_point_panel(path: Path, fake: torch.Tensor, lensed: torch.Tensor | None, real: torch.Tensor, title: str = "",
                     lensed_name: str = "L(X)") -> None:
    """Scatter plots of G(Z), what D sees as real (``lensed_name``: L(X) for the
    lens, noisy X for instance noise, X once the tempering has left) and X for 2-D data."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("G(Z)", fake), (lensed_name if lensed is not None else "L(X): no lens", lensed), ("X", real)]
    lim = float(real.abs().max()) * 1.3
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
    for ax, (name, pts) in zip(axes, panels):
        if pts is not None:
            pts = pts.detach().float().cpu()
            ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
        ax.set_title(name)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=80)
    finally:
        plt.close(fig)
