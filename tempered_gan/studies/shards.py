"""A comparison's grid (arm × seed runs) split over independent processes.

``compare … --shard I/N`` trains only shard I of N (0 ≤ I < N): the grid's runs
in their fixed order (seed by seed, arms in the order given), cut into N
contiguous slices whose sizes differ by at most one. The N processes share
nothing but the file system, so they can run on N machines (a SLURM array, a
Kubernetes indexed job, a loop over ssh). Each run is exactly the run one
process would make: its configuration depends only on (arm, seed), and a
shard changes only which runs this process trains.

The grid manifest ``OUT/grid.json`` (written atomically, under a short lock)
names the grid: arms, seeds, each run's folder and configuration (less the
options a run may change when continued: steps, device, logging and
evaluation). A shard of another grid, or one that splits it into another
number of shards, is refused in one line. A whole comparison (no ``--shard``)
may change the grid of its folder, as ``compare`` always could (runs whose
configuration changed are refused by the run itself), and then forgets the
split. ``--report-only`` writes the report from the runs that have finished and
lists the others (missing, unfinished, running).

Locks (:mod:`tempered_gan.util.locks`): shards and ``--report-only`` hold the
comparison folder's lock shared, a whole comparison exclusive; each shard holds
``OUT/shards/I-of-N`` so one shard cannot run twice at once, and each run
folder is locked by whoever trains it.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tempered_gan.config.train_config import CONFIG, RESUME_OPTIONS, TrainConfig, migrate, run_identity
from tempered_gan.errors import UserError
from tempered_gan.training.checkpoint import CHECKPOINT, load_checkpoint
from tempered_gan.training.run_folder import recorded_failure
from tempered_gan.util import locks
from tempered_gan.util.atomic_files import atomic_write_bytes

MANIFEST = "grid.json"
FORMAT = 1


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``I/N`` with 0 ≤ I < N (the numbering of SLURM ``--array=0-(N-1)`` and Kubernetes indexed jobs)."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not found:
        raise UserError(f"--shard takes I/N (shard I of N, 0 ≤ I < N), got {text!r}")
    index, count = int(found.group(1)), int(found.group(2))
    if count < 1 or index >= count:
        raise UserError(f"--shard {text}: I must be 0 … N−1 (here 0 … {count - 1})" if count >= 1 else
                        f"--shard {text}: N must be at least 1")
    return Shard(index, count)


def grid_options(jobs: int, shard: str | None, report_only: bool, whole: str) -> Shard | None:
    """Check compare's and reproduce's ``--jobs``, ``--shard I/N`` and ``--report-only``
    (which reports the ``whole`` grid or table, so takes no shard); returns the shard."""
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    parsed = parse_shard(shard) if shard is not None else None
    if parsed is not None and report_only:
        raise UserError(f"--report-only reports the whole {whole}; it takes no --shard")
    return parsed


def share(keys: list, shard: Shard | None) -> list:
    """Shard ``shard``'s runs of ``keys`` (in grid order): slice I of N contiguous, near-equal slices."""
    if shard is None:
        return list(keys)
    n = len(keys)
    return keys[shard.index * n // shard.count:(shard.index + 1) * n // shard.count]


def manifest_for(configs: dict, run_dirs: dict, out: Path) -> dict:
    runs = [{"arm": arm, "seed": seed, "folder": str(run_dirs[arm, seed].relative_to(out)),
             "config": run_identity(cfg)} for (arm, seed), cfg in configs.items()]
    arms = list(dict.fromkeys(arm for arm, _ in configs))
    seeds = list(dict.fromkeys(seed for _, seed in configs))
    return {"format": FORMAT, "grid": _digest(runs), "arms": arms, "seeds": seeds, "shards": None, "runs": runs}


def _digest(runs: list[dict]) -> str:
    return hashlib.sha256(json.dumps(runs, sort_keys=True).encode()).hexdigest()


def _migrated(manifest: dict) -> dict:
    """A manifest written by an earlier version, its run identities in today's vocabulary
    (:func:`~tempered_gan.config.migrate`) and its digest recomputed from them: a grid
    started before an option was renamed is the same grid."""
    runs = manifest.get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) and isinstance(r.get("config"), dict) for r in runs):
        return manifest
    runs = [{**r, "config": {k: v for k, v in sorted(migrate(r["config"]).items()) if k not in RESUME_OPTIONS}}
            for r in runs]
    if runs == manifest["runs"]:
        return manifest
    return {**manifest, "runs": runs, "grid": _digest(runs)}


def _summary(manifest: dict) -> str:
    first = (manifest.get("runs") or [{}])[0].get("config", {})
    seeds = manifest.get("seeds") or []
    return (f"{first.get('dataset', '?')}, {first.get('loss', '?')}, arms {','.join(map(str, manifest.get('arms', [])))}, "
            f"seeds {','.join(map(str, seeds))}")


def _difference(old: dict, new: dict) -> str:
    """How two manifests' grids differ, in a few words."""
    for key in ("arms", "seeds"):
        if old.get(key) != new.get(key):
            return f"{key} {','.join(map(str, old.get(key) or []))} there, {','.join(map(str, new[key]))} here"
    before = {(r.get("arm"), r.get("seed")): r for r in old.get("runs", [])}
    for run in new["runs"]:
        was = before.get((run["arm"], run["seed"]), {})
        if was.get("folder") != run["folder"]:
            return f"run folder {was.get('folder')} there, {run['folder']} here"
        changed = sorted(k for k in set(run["config"]) | set(was.get("config", {}))
                         if run["config"].get(k) != was.get("config", {}).get(k))
        if changed:
            return ", ".join(f"{k} {was.get('config', {}).get(k)!r} there, {run['config'].get(k)!r} here"
                             for k in changed[:3])
    return "another configuration"


def _read_manifest(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable grid manifest ({exc}); remove it to start the grid afresh") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not a tempered-gan grid manifest of format {FORMAT}")
    return _migrated(manifest)


def check_reportable(out: Path, command: str) -> None:
    """``--report-only`` reads the runs of an earlier command: a folder that is not there is
    a mistyped ``--out``, refused before anything (a lock, a manifest) is written into it."""
    if not out.is_dir():
        raise UserError(f"{out} does not exist: --report-only reports the runs of an earlier {command} in "
                        "that folder, and there are none; check --out")


def open_grid(out: Path, configs: dict, run_dirs: dict, shard: Shard | None, *, report_only: bool = False,
              command: str = "compare") -> list:
    """Lock ``out`` for this process (shared for a shard or ``report_only``),
    check or write the manifest, and return the keys this process trains."""
    if report_only:
        check_reportable(out, command)
    what = {"compare": "comparison"}.get(command, command)      # how a refusal names the folder
    locks.acquire(out, what, shared=shard is not None or report_only)
    if shard is not None:
        locks.acquire(out / "shards" / f"{shard.index}-of-{shard.count}", f"shard {shard}")
    mine = manifest_for(configs, run_dirs, out)
    path = out / MANIFEST
    with locks.waiting(out / ".grid.lock"):      # shards started together: one writes, the others read
        old = _read_manifest(path)
        if old is not None and old.get("grid") != mine["grid"]:
            if shard is not None or report_only:
                raise UserError(f"{out} holds another grid ({_summary(old)}; {_difference(old, mine)}); "
                                "give every shard the same options, or choose another --out")
            old = None                             # a whole comparison redefines its folder's grid
        if shard is not None and old is not None and old.get("shards") not in (None, shard.count):
            raise UserError(f"{out} is split into {old['shards']} shards, not {shard.count}: use --shard I/{old['shards']} "
                            f"(or set \"shards\" to null in {path} to split it anew; finished runs are kept)")
        if old is None or (shard is not None and old.get("shards") is None):
            mine["shards"] = shard.count if shard is not None else None
            atomic_write_bytes(path, (json.dumps(mine, indent=2) + "\n").encode())
    if report_only:
        return []
    keys = share(list(configs), shard)
    if shard is not None:
        names = ", ".join(f"{a}-s{s}" for a, s in keys) or "none (the grid has fewer runs than shards)"
        print(f"{command}: shard {shard} of {len(configs)} runs: {names}", file=sys.stderr, flush=True)
    return keys


def status(cfg: TrainConfig, run_dir: Path) -> tuple[str, str | None]:
    """(state, detail) of one run: ``finished`` (detail: the failure, if it
    stopped on a NaN), ``running`` (detail: who), ``unfinished`` (detail: its
    step) or ``missing``."""
    failure = recorded_failure(run_dir)
    if failure is not None:
        return "finished", failure
    who = locks.holder(run_dir)
    if who is not None:
        return "running", who
    if not (run_dir / CONFIG).exists():
        return "missing", None
    if not (run_dir / CHECKPOINT).exists():
        return "unfinished", "no checkpoint yet"
    try:
        step = load_checkpoint(run_dir / CHECKPOINT)["step"]
    except UserError as exc:
        return "unfinished", str(exc)
    return ("finished", None) if step >= cfg.steps else ("unfinished", f"step {step} of {cfg.steps}")


def survey(configs: dict, run_dirs: dict) -> tuple[dict, list[str]]:
    """The finished runs ({key: failure or None}) and a line for each other run."""
    finished, others = {}, []
    for key, cfg in configs.items():
        state, detail = status(cfg, run_dirs[key])
        if state == "finished":
            finished[key] = detail
        else:
            others.append(f"- {key[0]}, seed {key[1]} (`{run_dirs[key].name}`): {state}" + (f", {detail}" if detail else ""))
    return finished, others


def note_unfinished(report: Path, others: list[str], total: int) -> None:
    """Add the list of runs that are not in the report's numbers (atomically)."""
    if not others:
        return
    text = report.read_text()
    note = [f"## Not finished: {len(others)} of {total} runs", "",
            "The table and figures above use only the finished runs. Run the shards (or the command) again to "
            "finish these, then `--report-only` for the full report.", "", *others, ""]
    marker = "## How this was produced"
    at = text.find(marker)
    text = text[:at] + "\n".join(note) + "\n" + text[at:] if at >= 0 else text + "\n" + "\n".join(note)
    atomic_write_bytes(report, text.encode())
