"""The line ``tempered-gan train`` ends with: what a person wants to know about the
run it just trained. What machines read stays in metrics.jsonl (and ``tempered-gan eval``).

It says how many steps ran and how long they took, when the tempering left, the
final FID and modes where they are known or cheap, and where the last sample
image is. FID and modes come from the evaluation the run logged at its last
step (``--eval-every``); without one, the 2-D mixtures are evaluated here, from
the checkpoint, exactly as ``tempered-gan eval`` does (less KID, which the line
does not show and which costs a hundred times more than FID on 2-D points).
Images are not: a classifier or Inception pass is not cheap, and the line says
how to get it.
"""
from __future__ import annotations

import math
from pathlib import Path

from tempered_gan.config.train_config import TrainConfig
from tempered_gan.data.registry import dataset_kind
from tempered_gan.training.factories import exit_policy
from tempered_gan.training.run_log import METRICS, read_metrics


def duration(seconds: float) -> str:
    """``41 s``, ``3 min 05 s`` or ``2 h 07 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def run_summary(run_dir: Path, cfg: TrainConfig, *, first_step: int, seconds: float) -> str:
    """One line about the finished run in ``run_dir``, trained from ``first_step``
    (0, or the step a resume started at) to ``cfg.steps`` in ``seconds``."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir / METRICS, warn=False)
    steps = f"{cfg.steps} steps" if first_step == 0 else f"steps {first_step} → {cfg.steps}"
    left = next((r["step"] for r in records if r.get("lens_exited")), None)
    parts = [f"done: {steps} in {duration(seconds)}", exit_policy(cfg).summary(left),
             _quality_text(run_dir, cfg, records),
             f"last samples: {run_dir / 'samples' / f'step_{cfg.steps:07d}.png'}"]
    return "; ".join(parts)


def _quality_text(run_dir: Path, cfg: TrainConfig, records: list[dict]) -> str:
    final = next((r for r in reversed(records) if r["step"] == cfg.steps and "fid" in r), None)
    if final is None and dataset_kind(cfg.dataset).points:
        from tempered_gan.training.snapshots import evaluate_run, load_run

        final = evaluate_run(load_run(run_dir), kid=False)
    if final is None:
        return f"FID not measured (tempered-gan eval {run_dir}, or --eval-every N during training)"
    return "final " + quality(final)


def quality(scores: dict) -> str:
    """``FID 0.0594, 8 of 8 modes`` from an evaluation's scores."""
    fid = scores["fid"]
    text = f"FID {fid:.3g}" if math.isfinite(fid) else "FID not finite (G's samples are not)"
    if "modes" in scores:
        text += f", {scores['modes']} of {scores['modes_total']} modes"
    return text
