"""``tempered-gan sweep``: where does training work? A grid of training settings × arms × seeds.

A *cell* is one setting of G's, D's, their optimiser's or the batch's options
(``--grid lr=2e-4,1e-3 --grid beta1=0,0.5``: four cells). Each cell is a
comparison of its own, in ``OUT/cells/<cell>/`` with its ``runs/`` and
``report.md``, made by compare's machinery (:mod:`tempered_gan.studies.compare`): for
each seed every arm starts from the same G and D weights, batches and noise;
``--jobs``, ``--shard I/N`` (over every run of the sweep), resume, locks and
``--report-only`` work as they do for ``compare``. A tempering option is never an
axis: those belong to the arms (``--arms sine:k=600``).

A run *trains* when it ends without a NaN or Inf (loss or FID), with a final FID of
at most ``--fail-fid`` and, where the data set has modes, at least ``--fail-modes``
of them (:data:`tempered_gan.studies.success.SUCCESS_DEFAULTS`). The rule is absolute, declared before the runs,
and printed in the report: compare's relative rule (2 × the best run) means nothing
in a cell where every run failed.

``OUT/report.md`` holds, per cell and arm, the success rate with its Wilson interval,
the seeds on which the arm and the reference arm disagree with an exact two-sided
binomial (McNemar) test, and the median final FID; across cells, each arm's mean
success rate and its difference from the reference's, with stratified bootstrap
intervals over seeds within cells, the IQM of final FID and the probability of
improvement (``rliable``); and ``map.png``: success rates over two axes, per arm
and against the reference.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.errors import UserError
from tempered_gan.studies.arms import Arm, format_value, option_pair, parse_value, reference_arm
from tempered_gan.studies.compare import cell_report, check_fail_rule, grid_configs, train_grid
from tempered_gan.studies.compare_report import RunResult, read_run
from tempered_gan.studies.success import success_rule
from tempered_gan.studies.sweep_report import write_sweep_report
from tempered_gan.util import locks

# What a grid may vary: G's and D's training settings, never the tempering (the arms' business).
GRID_KEYS = ("lr", "beta1", "beta2", "critic_steps", "optimizer", "width", "z_dim", "batch_size", "gp_weight", "loss")


@dataclass(frozen=True)
class Cell:
    """One setting of the grid's axes."""

    values: tuple[tuple[str, object], ...]

    @property
    def name(self) -> str:
        return ",".join(f"{k}={format_value(v)}" for k, v in self.values)

    @property
    def folder(self) -> str:
        return self.name.replace(",", "+")


def parse_grid(specs: list[str]) -> dict[str, list]:
    """``--grid key=v1,v2`` (repeatable) → {key: values}, each value parsed by the option's type."""
    if not specs:
        raise UserError("sweep needs at least one --grid KEY=V1,V2 (e.g. --grid lr=2e-4,1e-3)")
    types = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    axes: dict[str, list] = {}
    for spec in specs:
        pair = option_pair(spec)
        if pair is None:
            raise UserError(f"--grid {spec!r}: write KEY=V1,V2,…, e.g. --grid lr=2e-4,1e-3")
        key, text = pair
        if key not in GRID_KEYS:
            why = ("it belongs to the arms (e.g. --arms sine:k=600, noise:noise_sigma=0.5, r1:r1_gamma=1)"
                   if key in types else "no such option")
            raise UserError(f"--grid {key}: not a grid axis, {why}; the axes are {', '.join(GRID_KEYS)}")
        if key in axes:
            raise UserError(f"--grid {key} is given twice; list all its values in one --grid")
        values = [parse_value(f"--grid {spec}", key, v.strip(), types[key]) for v in text.split(",") if v.strip()]
        if not values or len(set(values)) != len(values):
            raise UserError(f"--grid {spec!r}: give distinct values, e.g. {key}=1,2")
        axes[key] = values
    return axes


def cells_of(axes: dict[str, list], base: TrainConfig) -> list[Cell]:
    """Every combination of the axes' values, each checked as a configuration (one error line if not)."""
    cells = [Cell(tuple(zip(axes, combo))) for combo in itertools.product(*axes.values())]
    names = [c.name for c in cells]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"--grid: two values print alike ({', '.join(twice)}); give values that differ in their "
                        "first six significant digits")
    for cell in cells:
        cfg = dataclasses.replace(base, **dict(cell.values))
        if "gp_weight" in axes and cfg.loss != "wgan-gp":
            raise UserError(f"sweep cell {cell.name}: gp_weight is an axis for wgan-gp only, not {cfg.loss}")
        try:
            resolve(cfg)
        except UserError as exc:
            raise UserError(f"sweep cell {cell.name}: {exc}") from None
    return cells


def sweep(base: TrainConfig, axes: dict[str, list], arms: "list[Arm | str]", seeds: list[int], out: Path, *,
          command: str, fail_fid: float | None = None, fail_modes: int | None = None, reference: str | None = None,
          map_axes: list[str] | None = None, progress: bool | None = None, jobs: int = 1, shard=None,
          report_only: bool = False) -> Path | None:
    """Train (or finish) every cell × arm × seed, then write ``out/report.md`` and ``out/map.png``;
    returns the report, or None when this shard is done and others are not."""
    cells = cells_of(axes, base)
    rule = success_rule(base.dataset, fail_fid, fail_modes)
    check_fail_rule(2.0, rule[0], rule[1])
    map_axes = _map_axes(axes, map_axes)
    grids = {cell: grid_configs(dataclasses.replace(base, **dict(cell.values)), arms, seeds, quiet=True) for cell in cells}
    parsed = grids[cells[0]][0]
    reference = reference_arm(parsed, reference)
    configs, run_dirs, logs, owner = {}, {}, {}, {}
    for cell, (cell_arms, _, cell_configs) in grids.items():
        for (arm, seed), cfg in cell_configs.items():
            key = (f"{cell.name}/{arm}", seed)
            folder = next(a.folder for a in cell_arms if a.name == arm)
            configs[key], owner[key] = cfg, (cell, arm, seed)
            run_dirs[key] = out / "cells" / cell.folder / "runs" / f"{folder}-s{seed}"
            logs[key] = out / "logs" / cell.folder / f"{folder}-s{seed}.log"
    trained = train_grid(configs, run_dirs, logs, out, "sweep", progress=progress, jobs=jobs, shard=shard,
                         report_only=report_only)
    if trained is None:
        return None
    failures, others = trained
    results: dict[tuple, RunResult] = {}
    for key, failure in failures.items():
        cell, arm, seed = owner[key]
        results[cell, arm, seed] = read_run(arm, seed, run_dirs[key], failure)
    for cell, (cell_arms, _, cell_configs) in grids.items():      # each cell's own comparison report
        done = {(arm, seed): failures[f"{cell.name}/{arm}", seed] for arm, seed in cell_configs
                if (f"{cell.name}/{arm}", seed) in failures}
        if done:
            dirs = {(arm, seed): run_dirs[f"{cell.name}/{arm}", seed] for arm, seed in cell_configs}
            cell_report(cell_arms, seeds, cell_configs, dirs, done, [], out / "cells" / cell.folder,
                        command=f"{command}  (cell {cell.name})", fail_factor=2.0, fail_fid=rule[0],
                        fail_modes=rule[1], reference=reference)
    first = grids[cells[0]][2][parsed[0].name, seeds[0]]
    with locks.waiting(out / ".report.lock"):   # shards finishing together: one report at a time
        return write_sweep_report(out, cells, parsed, seeds, results, others, rule=rule, reference=reference,
                                  map_axes=map_axes, command=command, base=first, total=len(configs))


def _map_axes(axes: dict[str, list], chosen: list[str] | None) -> list[str]:
    """The map's axes: ``--map X,Y`` (grid keys), else the grid's first two (one when it has one)."""
    if not chosen:
        return list(axes)[:2]
    chosen = [c.strip().replace("-", "_") for c in chosen if c.strip()]
    unknown = [c for c in chosen if c not in axes]
    if unknown or not 1 <= len(chosen) <= 2 or len(set(chosen)) != len(chosen):
        raise UserError(f"--map takes one or two of the grid's axes ({', '.join(axes)}), got {','.join(chosen)!r}")
    return chosen
