"""``tempered-gan reproduce``: the paper's table (§4) in one command.

Each row is one of the paper's settings (the presets of :mod:`experiment`: the
paper's nets for its loss, K = 10 000, 10⁵ steps, FID on 4096 samples, 10 000
for WGAN-GP) run as a ``compare`` grid in ``OUT/<row>/``; ``OUT/report.md``
puts every row's FID beside the number the paper reports. ``--scale s``
multiplies the steps, K and the evaluation interval by s for a trial run (the
result is then not the paper's setting, and says so). ``--shard I/N`` runs
shard I of every row's grid (see :mod:`grid`).

Checks before anything runs or is written: the Inception weights (the paper's
FID features), and every data set the rows need; what is missing is fetched
then (:mod:`fetch`), else one line per missing set names where its files go.
Classifier features (``--fid-features classifier``) need no weights; their FIDs
are marked as not comparable with the paper's.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from tempered_gan.config.presets import PRESETS, preset
from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.errors import UserError
from tempered_gan.studies import shards
from tempered_gan.util import locks
from tempered_gan.util.atomic_files import atomic_write_bytes

# The paper's numbers (paper §4): FID with Inception features, lower is better.
ROWS = {
    "dcgan-mnist": ("DCGAN, MNIST", "42", "22"),
    "dcgan-color-mnist": ("DCGAN, Color MNIST", "best 53, never below 50", "9"),
    "lsgan-mnist": ("LSGAN, MNIST", "best 19; most seeds fail", "14–16, all seeds train"),
    "lsgan-color-mnist": ("LSGAN, Color MNIST", "best 90", "14–22, all seeds train"),
    "lsgan-celeba": ("LSGAN, CelebA", "best 52", "32–37, all seeds train"),
    "wgan-gp-cifar10": ("WGAN-GP, CIFAR-10", "39 at the end", "39 at the end, reached earlier"),
}
PAPER_ARMS = {"none": 1, "sine": 2}   # which of ROWS' columns an arm is compared with
# Options that change how a run is computed or logged, not the experiment: not "another setting".
NOT_SETTINGS = ("fid_features", "inception_weights", "dinov2_weights", "device", "amp", "channels_last", "cuda_graphs",
                "log_every", "sample_every", "checkpoint_every")
# Options each row sets itself: the row's setting, the seeds, the per-arm tempering.
ROW_OPTIONS = ("dataset", "loss", "schedule", "tempering", "lambda_value", "seed", "data_dir", "steps", "k", "eval_every")


def parse_rows(text: str | None) -> list[str]:
    rows = [r.strip() for r in (text or ",".join(ROWS)).split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        raise UserError(f"unknown row {', '.join(unknown) or '(none)'}; choose from: {', '.join(ROWS)}")
    return list(dict.fromkeys(rows))


def row_config(row: str, scale: float, overrides: dict) -> TrainConfig:
    """The row's base configuration: the paper's preset, steps, K and the evaluation interval × ``scale``."""
    options = dict(preset(row).options)
    for key in ("steps", "k", "eval_every"):
        options[key] = max(1, round(options[key] * scale))
    return TrainConfig(**{**options, **overrides})


def check_inputs(rows: list[str], fid_features: str, inception_weights: str | None) -> None:
    """The Inception weights, then every data set (fetched where missing): one line each that cannot be had."""
    from tempered_gan.data.loaders import load_dataset
    from tempered_gan.metrics import inception_weights_path

    if fid_features == "inception":
        inception_weights_path(inception_weights)
    missing = []
    for name in dict.fromkeys(PRESETS[r]["dataset"] for r in rows):
        try:
            load_dataset(name)
        except UserError as exc:
            missing.append(str(exc))
    if missing:
        raise UserError("\n".join(missing))


def reproduce(rows: list[str], out: Path, *, scale: float = 1.0, seeds: int = 3, arms: list[str] | None = None,
              shard: "shards.Shard | None" = None, report_only: bool = False, fid_features: str = "inception",
              inception_weights: str | None = None, overrides: dict | None = None, jobs: int = 1,
              progress: bool | None = None, command: str = "tempered-gan reproduce") -> Path | None:
    """Run (or finish) every row's grid, then write ``out/report.md``; None
    while other shards still have runs to finish."""
    from tempered_gan.studies.compare import compare

    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and 0 < scale <= 1):
        raise UserError(f"--scale must be in (0, 1], got {scale!r}")
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    overrides = dict(overrides or {})
    given = sorted(set(overrides) & set(ROW_OPTIONS))
    if given:
        raise UserError(f"each row sets {', '.join('--' + k.replace('_', '-') for k in given)} itself "
                        "(use --rows, --scale and --seeds)")
    arms = arms or ["none", "sine"]
    overrides.update(fid_features=fid_features, inception_weights=inception_weights)
    bases = {row: row_config(row, scale, overrides) for row in rows}
    for base in bases.values():
        resolve(base)                               # bad options fail before anything is checked or written
    if report_only:
        shards.check_reportable(out, "reproduce")
    else:
        check_inputs(rows, fid_features, inception_weights)
    locks.acquire(out, "reproduction", shared=shard is not None or report_only)
    if not report_only:   # --report-only: the table from whatever has finished; the rows' reports stay as they are
        reports = {}
        for row in rows:
            print(f"reproduce: {row} ({ROWS[row][0]}) in {out / row}", file=sys.stderr)
            reports[row] = compare(bases[row], arms, list(range(seeds)), out / row, command=command,
                                   progress=progress, jobs=jobs, shard=shard)
        if any(r is None for r in reports.values()):
            print("reproduce: this shard is done; the last shard to finish writes the report "
                  "(or run the command with --report-only)", file=sys.stderr)
            return None
    return write_table(rows, arms, out, bases, scale=scale, overrides=overrides, command=command,
                       planned=seeds * len(arms))


def _summary(out: Path, row: str, base: TrainConfig, arms: list[str], planned: int) -> tuple[dict, int, int]:
    """{arm: summarise() row} of a row's finished runs, how many finished and how many the grid has."""
    import json

    from tempered_gan.studies.arms import arm_config
    from tempered_gan.studies.compare_report import read_run, summarise

    if not (out / row / shards.MANIFEST).exists():
        return {}, 0, planned                       # not started
    manifest = json.loads((out / row / shards.MANIFEST).read_text())
    configs, run_dirs = {}, {}
    for run in manifest["runs"]:
        key = (run["arm"], run["seed"])
        configs[key] = arm_config(base, run["arm"], run["seed"])
        run_dirs[key] = out / row / run["folder"]
    finished, _ = shards.survey(configs, run_dirs)
    results = [read_run(arm, seed, run_dirs[arm, seed], failure) for (arm, seed), failure in finished.items()]
    shown = [a for a in arms if any(r.arm == a for r in results)]
    rows, _, _ = summarise(results, shown, 2.0) if results else ([], None, None)
    return {r["arm"]: r for r in rows}, len(finished), len(configs)


def write_table(rows: list[str], arms: list[str], out: Path, bases: dict, *, scale: float, overrides: dict,
                command: str, planned: int) -> Path:
    features = bases[rows[0]].fid_features
    comparable = features == "inception"
    changed = sorted(k for k in overrides if k not in NOT_SETTINGS and overrides[k] is not None)
    ours = "ours" if comparable else "ours (classifier features: NOT comparable)"
    lines = ["# The paper's table, reproduced", ""]
    if not comparable:
        lines += [f"**FID features: {features}. These numbers are NOT comparable with the paper's, which uses "
                  "Inception features** (`--fid-features inception`).", ""]
    if scale != 1 or changed:
        lines += ["**Not the paper's settings:** " + ", ".join(
            ([f"steps, K and evaluation interval × {scale:g}"] if scale != 1 else [])
            + [f"{k.replace('_', '-')} = {overrides[k]}" for k in changed]) + ".", ""]
    lines += [f"| setting | arm | paper FID | {ours}: best FID | {ours}: final FID | runs finished | failed | steps |",
              "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        label, *paper = ROWS[row]
        summary, done, total = _summary(out, row, bases[row], arms, planned)
        steps = resolve(bases[row]).steps
        for arm in arms:
            s = summary.get(arm, {})
            cited = paper[PAPER_ARMS[arm] - 1] if arm in PAPER_ARMS else "—"
            lines.append(f"| {label} | {arm} | {cited} | {s.get('best_fid', '–')} | {s.get('final_fid', '–')} | "
                         f"{s.get('seeds', 0)} | {s.get('failed', '–')} | {steps} |")
        if done < total:
            lines.append(f"| {label} | ({total - done} of {total} runs not finished: see [{row}/report.md]"
                         f"({row}/report.md)) | | | | | | |")
    lines += ["", "Paper FID: Sajjadi et al. 2018, §4 (Inception features; 4096 samples, 10 000 for WGAN-GP). "
              "Ours: mean ± standard deviation over the finished seeds. Each setting's own report, with its FID "
              "curves, samples and configuration: " + ", ".join(f"[{r}]({r}/report.md)" for r in rows) + ".", "",
              "## How this was produced", "", "```", command, "```", ""]
    report = out / "report.md"
    with locks.waiting(out / ".report.lock"):
        atomic_write_bytes(report, "\n".join(lines).encode())
    return report
