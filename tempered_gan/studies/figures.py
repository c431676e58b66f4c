"""The figures of a comparison's report: FID, modes and the lens against step, and sample strips.

Each reads the runs' results (:class:`tempered_gan.studies.compare_report.RunResult`: ``arm``,
``seed``, ``run_dir``, ``evals``, ``logs``, ``fids``) and writes one PNG
atomically beside ``report.md``; arms keep their colours in every figure.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from tempered_gan.studies.arms import Arm
from tempered_gan.training.run_log import save_figure


def write_figures(results: list, arms: list[Arm], out: Path, labels: dict, colours: dict) -> tuple[str, bool, bool]:
    """fid.png, lens.png, samples.png and (where modes are defined) modes.png; returns the
    feature description and whether samples.png and modes.png were written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first_seed = {a.name: min((r.seed for r in results if r.arm == a.name), default=None) for a in arms}

    def label(r) -> str | None:      # one legend entry per arm
        return labels[r.arm] if r.seed == first_seed[r.arm] else None

    feature = _fid_figure(plt, results, out, label, colours)
    modes = _modes_figure(plt, results, out, label, colours)
    _lens_figure(plt, results, out, label, colours)
    strips = _sample_strips(plt, results, arms, out, labels)
    return feature, strips, modes


LEGEND_INSIDE = 4   # arms a legend may hold inside the axes; with more it goes to the right, off the curves


def _legend(ax, title: str) -> None:
    """The arms' legend: inside the axes for a few arms, beside them for many (it would hide the curves)."""
    outside = len(ax.get_legend_handles_labels()[0]) > LEGEND_INSIDE
    ax.legend(fontsize=8, title=title, title_fontsize=8,
              **({"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if outside else {}))


def _fid_figure(plt, results: list, out: Path, label, colours: dict) -> str:
    """FID against step, one line per seed, arms in their colours; returns the feature description."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        if r.fids:
            steps, fids = zip(*r.fids)
            ax.plot(steps, fids, color=colours[r.arm], alpha=0.8, marker=".", label=label(r))
    feature = next((e.get("features") for r in results for e in r.evals), "?")
    values = [f for r in results for _, f in r.fids if f == f and abs(f) != float("inf")]
    log = bool(values) and min(values) > 0     # one diverged run's FID must not flatten every other curve
    ax.set(xlabel="step", ylabel="FID" + (" (log scale)" if log else ""), yscale="log" if log else "linear")
    ax.set_title("FID against step, one line per seed\n" + textwrap.fill(f"features: {feature}", 60), fontsize=9)
    _legend(ax, "arm (colour)")
    fig.tight_layout()
    save_figure(fig, out / "fid.png", dpi=100)
    plt.close(fig)
    return feature


def _modes_figure(plt, results: list, out: Path, label, colours: dict) -> bool:
    """Modes covered (and the KL of the mode histogram) against step, where the data set has modes."""
    keys = [k for k in ("modes", "kl") if any(e.get(k) is not None for r in results for e in r.evals)]
    if not keys:
        return False
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for r in results:
            points = [(e["step"], e[key]) for e in r.evals if e.get(key) is not None]
            if points:
                ax.plot(*zip(*points), color=colours[r.arm], alpha=0.8, marker=".", label=label(r))
        ax.set(xlabel="step", ylabel=key, title={"modes": "modes covered", "kl": "KL(mode histogram ‖ uniform)"}[key])
    _legend(axes[0][-1], "arm (colour)")
    fig.tight_layout()
    save_figure(fig, out / "modes.png", dpi=100)
    plt.close(fig)
    return True


def _lens_figure(plt, results: list, out: Path, label, colours: dict) -> None:
    """λ and the lens reconstruction error against step, one line per seed, a legend of the arms."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for r in results:
        logs = [x for x in r.logs if x.get("lambda") is not None]
        if logs:
            ax1.plot([x["step"] for x in logs], [x["lambda"] for x in logs], color=colours[r.arm], marker=".",
                     label=label(r))
            ax2.plot([x["step"] for x in logs], [max(x["loss_lens_rec"], 1e-12) for x in logs], color=colours[r.arm],
                     marker=".")
    if ax1.get_legend_handles_labels()[0]:
        _legend(ax1, "arm (colour; one line per seed)")
    else:
        ax1.text(0.5, 0.5, "no arm tempers the real data", ha="center", va="center", transform=ax1.transAxes)
    ax1.set(xlabel="step", ylabel="λ")
    ax1.set_title("λ(t) (noise and blur: σ(t) = σ₀·λ(t))", fontsize=9)
    ax2.set(xlabel="step", ylabel="‖X − T(X)‖² (mean)", yscale="log")
    ax2.set_title("D's real input T(X) against X\n(T = L, noise or blur; the lens's reconstruction error)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out / "lens.png", dpi=100)
    plt.close(fig)


def _sample_strips(plt, results: list, arms: list[Arm], out: Path, labels: dict) -> bool:
    """Sample strips (first seed of each arm) at up to four stages; whether any were drawn."""
    strips = []
    for arm in arms:
        runs = [x for x in results if x.arm == arm.name]
        if not runs:
            continue
        r = min(runs, key=lambda x: x.seed)
        grids = sorted((r.run_dir / "samples").glob("step_*.png")) if (r.run_dir / "samples").exists() else []
        if grids:
            picks = sorted({grids[round(i * (len(grids) - 1) / 3)] for i in range(4)})
            strips.append((arm.name, picks))
    if not strips:
        return False
    cols = max(len(p) for _, p in strips)
    height = 2.2 * len(strips) + 0.6                           # 0.6 in above the strips for the title
    fig, axes = plt.subplots(len(strips), cols, figsize=(4.5 * cols, height), squeeze=False)
    for row, (arm, picks) in enumerate(strips):
        for col in range(cols):
            ax = axes[row][col]
            ax.axis("off")
            if col < len(picks):
                ax.imshow(plt.imread(picks[col]))
                ax.set_title(f"{labels[arm]}, step {int(picks[col].stem.split('_')[1])}", fontsize=9)
    title = "samples: G(Z) | what D sees as real (L(X), noisy or blurred X) | X"
    fig.suptitle(textwrap.fill(title, max(30, int(10 * 4.5 * cols))), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.4 if cols > 1 else 0.6) / height))  # the title's room, never clipped
    save_figure(fig, out / "samples.png", dpi=100)
    plt.close(fig)
    return True
