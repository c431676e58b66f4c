"""One picture of a typical run of each arm of a comparison: for each arm, the seed whose final FID is
the arm's median, 64 samples from its checkpoint; for a colour-stacked set also each channel on its
own, in grey, so that a channel that does not look like the data shows. Written beside the report.

    python docs/results/mnist/typical_runs.py runs/mnist/color/verdict docs/results/mnist/color/typical.png
"""
import statistics
import sys
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from tempered_gan.studies.arms import arm_of_folder  # noqa: E402
from tempered_gan.studies.compare_report import read_run  # noqa: E402
from tempered_gan.training.run_folder import recorded_failure  # noqa: E402
from tempered_gan.training.snapshots import load_run  # noqa: E402

SAMPLES = 64


def runs_by_arm(folder: Path) -> dict[str, list]:
    """{arm: its runs' results} of a comparison folder, seeds in order."""
    runs: dict[str, list] = {}
    for run_dir in sorted((folder / "runs").iterdir()):
        stem, seed = run_dir.name.rsplit("-s", 1)
        arm = arm_of_folder(stem).name
        runs.setdefault(arm, []).append(read_run(arm, int(seed), run_dir, recorded_failure(run_dir)))
    return runs


def typical(folder: Path) -> dict[str, Path]:
    """{arm: the run folder of its median seed by final FID} (ties: the lower seed)."""
    chosen = {}
    for arm, results in runs_by_arm(folder).items():
        scored = sorted((r for r in results if r.final_fid is not None), key=lambda r: (r.final_fid, r.seed))
        pick = scored[len(scored) // 2] if scored else results[0]
        chosen[arm] = pick.run_dir
        median = statistics.median(r.final_fid for r in scored) if scored else float("nan")
        print(f"{arm}: seed {pick.seed} (final FID {pick.final_fid}, median {median:.4g})", file=sys.stderr)
    return chosen


def main(folder: Path, out: Path) -> None:
    chosen = typical(folder)
    columns = None
    fig = None
    for row, (arm, run_dir) in enumerate(chosen.items()):
        trainer = load_run(run_dir, device="cpu")
        x = trainer.generate(SAMPLES).cpu().clamp(-1, 1) * 0.5 + 0.5
        panels = [("samples", x)] + ([(f"{c} channel", x[:, i:i + 1]) for i, c in enumerate("RGB")]
                                     if x.shape[1] == 3 else [])
        if fig is None:
            columns = len(panels)
            fig, axes = plt.subplots(len(chosen), columns, figsize=(2.6 * columns, 2.8 * len(chosen)), squeeze=False)
        for col, (title, images) in enumerate(panels):
            grid = make_grid(images, nrow=8, padding=1, pad_value=1.0)
            axes[row][col].imshow(grid.permute(1, 2, 0).numpy() if grid.shape[0] == 3 else grid[0].numpy(),
                                  cmap=None if grid.shape[0] == 3 else "gray", vmin=0, vmax=1)
            axes[row][col].set_axis_off()
            axes[row][col].set_title(f"{arm}, step {trainer.step_count}" if col == 0 else title, fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
