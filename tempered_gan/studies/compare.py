"""``tempered-gan compare``: the paper's protocol (§4) as one command.

Arms {no lens, sine lens, optionally constant λ = 1, the lens's exits, and the
baselines instance noise and blur} × seeds, for one data set and loss. For a
given seed every arm starts from the same G and D weights and sees the same data
order and noise (the lens and the instance noise have random streams of their
own), so the arms differ only by what tempers the real data. Runs live in ``OUT/runs/<arm>-s<seed>``;
re-running the command skips finished runs and resumes interrupted ones. The
report ``OUT/report.md`` sits beside its PNG figures.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from tempered_gan.config.train_config import CONFIG, TrainConfig, check_number, resolve
from tempered_gan.errors import UserError
from tempered_gan.studies import shards
from tempered_gan.studies.arms import Arm, arm_config, parse_arm, reference_arm
from tempered_gan.studies.compare_report import read_run, write_report
from tempered_gan.training.run_folder import checkpoint_step, record_failure, recorded_failure
from tempered_gan.util import locks
from tempered_gan.util.atomic_files import atomic_write_bytes

DEFAULT_EVALUATIONS = 10   # FID evaluations per run when --eval-every is not given


def run_arm(cfg: TrainConfig, run_dir: Path, data, progress: bool | None, device=None) -> str | None:
    """Train one run to ``cfg.steps`` (on ``device``, chosen by ``preflight``): skip it
    when finished, resume it when interrupted. Returns why it failed (a NaN/Inf loss), or None."""
    with locks.acquire(run_dir):      # one process per run, also across shards and machines
        return _run_arm_locked(cfg, run_dir, data, progress, device)


def _run_arm_locked(cfg: TrainConfig, run_dir: Path, data, progress: bool | None, device) -> str | None:
    from tempered_gan.training.loop import NonFiniteLoss, train

    failure = recorded_failure(run_dir)
    if failure is not None:
        return failure
    step = checkpoint_step(run_dir, cfg) if (run_dir / CONFIG).exists() else None
    if step is not None and step >= cfg.steps:
        return None
    if step is None:
        locks.clear(run_dir)          # a run that never saved a checkpoint: start afresh (the lock file stays)
    atomic_write_bytes(run_dir / CONFIG, cfg.to_json().encode())
    try:
        train(cfg, data, run_dir, resume=step is not None, progress=progress, device=device)
    except NonFiniteLoss as exc:
        record_failure(run_dir, str(exc))
        return str(exc)
    return None


def _run_arm_process(cfg_json: str, run_dir: str, log_path: str, threads: int, device: str) -> None:
    """Body of one ``compare --jobs`` worker: one run, its output in its log.
    Exit status: 0 done (or stopped on NaN, recorded in FAILED), 2 bad input,
    128 + signal when stopped by SIGINT/SIGTERM after a checkpoint."""
    import os
    import sys

    import torch

    from tempered_gan.data.loaders import data_of
    from tempered_gan.training.loop import Interrupted

    log = open(log_path, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    torch.set_num_threads(threads)
    try:
        cfg = TrainConfig.from_dict(json.loads(cfg_json))
        run_arm(cfg, Path(run_dir), data_of(cfg), progress=None,  # a line per log step
                device=torch.device(device))
    except Interrupted as exc:
        print(f"{exc}; checkpoint saved", file=sys.stderr)
        sys.exit(128 + exc.signum)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def _last_error(log_path: Path) -> str:
    """': <message>' of the worker's last ``error:`` line (e.g. a full disk), or ''."""
    try:
        lines = [x for x in log_path.read_text(errors="replace").splitlines() if x.startswith("error: ")]
    except OSError:
        return ""
    return f": {lines[-1][len('error: '):]}" if lines else ""


def run_parallel(runs: dict[tuple[str, int], tuple[TrainConfig, Path, Path, str]], jobs: int) -> dict:
    """Train ``runs`` ({key: (config, run folder, log file, device)}), ``jobs`` at a time,
    each in a fresh process (spawned: no state shared with this one). On the CPU
    the cores are shared out (``cpu_count // jobs`` threads each; the 2-D mixtures'
    tiny nets run on one, :func:`~tempered_gan.training.factories.use_thread_policy`).

    SIGINT/SIGTERM: no new run starts, the running ones get SIGTERM, save a
    checkpoint and stop; then :class:`~tempered_gan.training.loop.Interrupted` is raised
    here, and running the same command again resumes them. Returns
    {key: failure or None}, as :func:`run_arm` does."""
    import multiprocessing
    import os
    import signal
    import sys
    import time

    from tempered_gan.training.loop import Interrupted

    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending, running, stopped = list(runs), {}, []
    caught: list[int] = []
    handler = lambda signum, frame: caught.append(signum)  # noqa: E731
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while pending or running:
            if caught:
                for proc in running.values():
                    if proc.is_alive() and not getattr(proc, "_told", False):
                        proc._told = True
                        os.kill(proc.pid, signal.SIGTERM)
                pending = []
            while pending and len(running) < jobs:
                key = pending.pop(0)
                cfg, run_dir, log_path, device = runs[key]
                log_path.parent.mkdir(parents=True, exist_ok=True)
                proc = ctx.Process(target=_run_arm_process, daemon=False,
                                   args=(cfg.to_json(), str(run_dir), str(log_path), threads, device))
                proc.start()
                running[key] = proc
                print(f"started {key[0]}, seed {key[1]} (log: {log_path})", file=sys.stderr)
            for key, proc in list(running.items()):
                if proc.exitcode is None:
                    continue
                del running[key]
                if proc.exitcode >= 128 or proc.exitcode < 0:
                    stopped.append(key)
                elif proc.exitcode != 0:
                    raise UserError(f"run {key[0]}, seed {key[1]} failed (exit {proc.exitcode}){_last_error(runs[key][2])}; "
                                    f"see {runs[key][2]}")
                else:
                    print(f"finished {key[0]}, seed {key[1]}", file=sys.stderr)
            time.sleep(0.2)
    finally:
        for proc in running.values():   # an error here: stop the others cleanly too
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
                proc.join()
        for s, h in old.items():
            signal.signal(s, h)
    if caught or stopped:
        raise Interrupted(caught[0] if caught else signal.SIGTERM, 0)
    return {key: recorded_failure(run_dir) for key, (_, run_dir, _, _) in runs.items()}


def compare(base: TrainConfig, arms: "list[Arm | str]", seeds: list[int], out: Path, *, command: str,
            fail_factor: float = 2.0, fail_fid: float | None = None, fail_modes: int | None = None,
            reference: str | None = None, progress: bool | None = None, jobs: int = 1,
            shard: "shards.Shard | None" = None, report_only: bool = False) -> Path | None:
    """Run (or finish) every arm × seed, then write ``out/report.md``.

    ``arms`` are :class:`Arm` or their ``--arms`` spellings (``sine:k=600``). ``reference``
    names the arm the others are compared with seed by seed (default: the arm without
    tempering, else the first).

    ``shard`` (I of N): train only that share of the runs; the report is written
    once every run of the grid has finished (else None is returned).
    ``report_only``: train nothing; report the finished runs and list the others.

    With ``jobs`` > 1 that many runs train at once, each in a process of its
    own writing to ``out/logs/<arm>-s<seed>.log`` (see :func:`run_parallel`).
    How many run at once never changes what each run trains."""
    check_fail_rule(fail_factor, fail_fid, fail_modes)
    arms, base, configs = grid_configs(base, arms, seeds)
    reference = reference_arm(arms, reference)
    folders = {a.name: a.folder for a in arms}
    run_dirs = {key: out / "runs" / f"{folders[key[0]]}-s{key[1]}" for key in configs}
    logs = {key: out / "logs" / f"{folders[key[0]]}-s{key[1]}.log" for key in configs}
    trained = train_grid(configs, run_dirs, logs, out, "compare", progress=progress, jobs=jobs, shard=shard,
                         report_only=report_only)
    if trained is None:
        return None
    failures, others = trained
    return cell_report(arms, seeds, configs, run_dirs, failures, others, out, command=command,
                       fail_factor=fail_factor, fail_fid=fail_fid, fail_modes=fail_modes, reference=reference)


def check_fail_rule(fail_factor: float, fail_fid: float | None, fail_modes: int | None) -> None:
    check_number("fail_factor", fail_factor, at_least=1.0)   # below 1, even the best run would count as failed
    if fail_fid is not None:
        check_number("fail_fid", fail_fid, positive=True)
    if fail_modes is not None and (isinstance(fail_modes, bool) or not isinstance(fail_modes, int) or fail_modes < 1):
        raise UserError(f"fail-modes must be a whole number ≥ 1, got {fail_modes!r}")


def grid_configs(base: TrainConfig, arms: "list[Arm | str]", seeds: list[int], *,
                 quiet: bool = False) -> tuple[list[Arm], TrainConfig, dict]:
    """The arms (parsed), the base (with ten evaluations per run unless told) and every
    run's configuration {(arm, seed): config}: for each seed, every arm from the same G and D."""
    arms = [parse_arm(a) if isinstance(a, str) else a for a in arms]
    twice = [a.name for i, a in enumerate(arms) if a.name in {b.name for b in arms[:i]}]
    if twice:
        raise UserError(f"--arms names the arm {twice[0]!r} twice")
    twice = [s for i, s in enumerate(seeds) if s in seeds[:i]]
    if twice:
        raise UserError(f"--seeds names a seed twice ({twice[0]})")
    if not base.eval_every:   # the comparison is about FID: ten evaluations per run unless told otherwise
        steps = resolve(base).steps
        base = dataclasses.replace(base, eval_every=max(1, steps // DEFAULT_EVALUATIONS))
        if not quiet:
            print(f"compare: FID every {base.eval_every} steps ({DEFAULT_EVALUATIONS} evaluations in {steps} steps; "
                  "choose with --eval-every N)", file=sys.stderr)
    parts = {p.base for a in arms for p in (a, *a.added)}
    for kind in ("noise", "blur"):
        if getattr(base, f"{kind}_sigma") is not None and kind not in parts:
            raise UserError(f"--{kind}-sigma is σ₀ of the {kind} arm, which --arms does not include")
    carried = {"r1_gamma": ("r1", "γ of"), "diffaugment": ("diffaug", "the policy of"),
               "spectral_norm": ("sn", "the switch of"), "blur_both": ("blur-both", "the switch of")}
    for option, (arm, what) in carried.items():     # given to compare or sweep, each reaches its own arms only
        if getattr(base, option) and arm not in parts:
            raise UserError(f"--{option.replace('_', '-')} is {what} the {arm} arm, which --arms does not include "
                            f"(add it, alone or with +, e.g. none+{arm}; blur-both stands alone)"
                            if arm != "blur-both" else
                            "--blur-both is the blur-both arm's, which --arms does not include")
    configs = {(arm.name, seed): arm_config(base, arm, seed) for seed in seeds for arm in arms}
    for i, a in enumerate(arms):                  # two spellings of one run (sine:k=600 with --k 600)
        for b in arms[:i]:
            if configs[a.name, seeds[0]] == configs[b.name, seeds[0]]:
                raise UserError(f"arms {b.name!r} and {a.name!r} are the same run; drop one")
    return arms, base, configs


def train_grid(configs: dict, run_dirs: dict, logs: dict, out: Path, command: str, *, progress: bool | None, jobs: int,
               shard: "shards.Shard | None", report_only: bool) -> tuple[dict, list[str]] | None:
    """Train this process's runs of a grid {key: config} whose runs live in ``run_dirs`` (the
    shard's share, ``jobs`` at a time, each with its log in ``logs``; none with ``report_only``).
    Returns (the finished runs {key: failure or None}, a line for each other run), or None when
    this shard is done and others are not."""
    from tempered_gan.data.loaders import data_of
    from tempered_gan.training.device import preflight

    devices, data = {}, None
    if not report_only:   # every run's checks before anything is written; each run is preflighted once
        first = next(iter(configs.values()))
        data = data_of(first)
        devices = {key: preflight(cfg, data) for key, cfg in configs.items()}
    # Lock out, check the grid manifest, pick this shard's runs (tempered_gan/studies/shards.py).
    mine = shards.open_grid(out, configs, run_dirs, shard, report_only=report_only, command=command)
    todo = {key: configs[key] for key in mine}
    if jobs > 1:
        failures = run_parallel({key: (cfg, run_dirs[key], logs[key], str(devices[key])) for key, cfg in todo.items()},
                                jobs)
    else:
        failures = {key: run_arm(cfg, run_dirs[key], data, progress, devices[key]) for key, cfg in todo.items()}
    others: list[str] = []
    if shard is not None or report_only:   # the other shards' runs: finished, running, unfinished or missing
        failures, others = shards.survey(configs, run_dirs)
        if others and not report_only:
            print(f"{command}: shard {shard} is done; {len(failures)} of {len(configs)} runs of the grid are finished. "
                  f"The last shard to finish writes the report (or run the command with --report-only)",
                  file=sys.stderr)
            return None
        if not failures:
            raise UserError(f"no run of the grid in {out} has finished yet; nothing to report")
    return failures, others


def cell_report(arms: list[Arm], seeds: list[int], configs: dict, run_dirs: dict, failures: dict, others: list[str],
                out: Path, *, command: str, fail_factor: float, fail_fid: float | None, fail_modes: int | None,
                reference: str) -> Path:
    """``out/report.md`` of one comparison from its finished runs ({(arm, seed): failure or None})."""
    shown = [arm for arm in arms if any(key[0] == arm.name for key in failures)]
    results = [read_run(arm, seed, run_dirs[arm, seed], failures[arm, seed]) for arm, seed in configs
               if (arm, seed) in failures]
    if reference not in {a.name for a in shown}:
        reference = None if not shown else reference_arm(shown, None)
    with locks.waiting(out / ".report.lock"):   # shards finishing together: one report at a time
        report = write_report(results, shown, out, command=command, base=configs[arms[0].name, seeds[0]],
                              fail_factor=fail_factor, fail_fid=fail_fid, fail_modes=fail_modes, reference=reference,
                              arm_configs={arm.name: configs[arm.name, seeds[0]] for arm in shown})
        shards.note_unfinished(report, others, len(configs))
    return report
