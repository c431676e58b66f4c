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
import math
import statistics
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from . import grid, runlock
from .checkpoint import CHECKPOINT, atomic_write_bytes, load_checkpoint
from .config import CONFIG, RESUME_OPTIONS, TrainConfig, check_number, resolve
from .errors import UserError

ARMS = {
    "none": {"lens": "none"},
    "sine": {"lens": "sine"},
    "constant": {"lens": "constant", "lambda_value": 1.0},
    # The sine lens with each way of leaving after K (--lens-exit; "sine" uses the default or --lens-exit).
    "exit-blend": {"lens": "sine", "lens_exit": "blend"},
    "exit-drop": {"lens": "sine", "lens_exit": "drop"},
    "exit-converge": {"lens": "sine", "lens_exit": "converge"},
    "exit-blend-zero": {"lens": "sine", "lens_exit": "blend", "lens_zero_init": True},
    # The baselines the paper names but never ran, on the same sine schedule: σ(t) = σ₀·λ(t), ending at K.
    "noise": {"lens": "sine", "tempering": "noise"},
    "blur": {"lens": "sine", "tempering": "blur"},
}
ARM_LABELS = {"none": "no lens", "sine": "sine lens", "constant": "constant λ = 1",
              "exit-blend": "sine, blend exit", "exit-drop": "sine, drop exit",
              "exit-converge": "sine, converge exit (paper)", "exit-blend-zero": "sine, blend exit, zero-init lens",
              "noise": "instance noise", "blur": "blurring lens"}
ARM_COLOURS = {"none": "tab:red", "sine": "tab:blue", "constant": "tab:green", "exit-blend": "tab:purple",
               "exit-drop": "tab:orange", "exit-converge": "tab:brown", "exit-blend-zero": "tab:cyan",
               "noise": "tab:olive", "blur": "tab:pink"}
FAILED = "FAILED"
DEFAULT_EVALUATIONS = 10   # FID evaluations per run when --eval-every is not given

# The paper's settings (§4, SPEC) and a small CPU demo. Values are TrainConfig
# fields plus ``seeds`` and ``arms``; command-line options override them.
PRESETS = {
    # On 2-D points FID is tiny and noisy (≈ 0.01 from sampling alone), so a factor of
    # the best run would fail healthy runs; 0.1 is well below N(0, I)'s 0.34 (docs/METRICS.md).
    "cpu-ring8": dict(dataset="mixture-ring8", loss="gan", steps=3000, k=1500, eval_every=250,
                      fid_samples=2048, sample_every=1000, seeds=3, arms="none,sine", fail_fid=0.1),
    "dcgan-mnist": dict(dataset="mnist", loss="gan", steps=100_000, k=10_000, eval_every=5000, seeds=3),
    "dcgan-color-mnist": dict(dataset="color-mnist", loss="gan", steps=100_000, k=10_000, eval_every=5000, seeds=3),
    "dcgan-mnist-constant": dict(dataset="mnist", loss="gan", steps=100_000, k=10_000, eval_every=5000, seeds=3,
                                 arms="none,sine,constant"),
    "lsgan-mnist": dict(dataset="mnist", loss="lsgan", steps=100_000, k=10_000, eval_every=5000, seeds=3),
    "lsgan-color-mnist": dict(dataset="color-mnist", loss="lsgan", steps=100_000, k=10_000, eval_every=5000, seeds=3),
    "lsgan-celeba": dict(dataset="celeba", loss="lsgan", steps=100_000, k=10_000, eval_every=5000, seeds=3),
    "wgan-gp-cifar10": dict(dataset="cifar10", loss="wgan-gp", steps=100_000, k=10_000, eval_every=5000, seeds=3),
}


@dataclass
class RunResult:
    arm: str
    seed: int
    run_dir: Path
    evals: list[dict] = field(default_factory=list)     # metrics.jsonl lines with "fid"
    logs: list[dict] = field(default_factory=list)      # metrics.jsonl lines with losses
    failure: str | None = None                          # why the run stopped early, if it did

    @property
    def fids(self) -> list[tuple[int, float]]:
        return [(e["step"], e["fid"]) for e in self.evals if e.get("fid") is not None and math.isfinite(e["fid"])]

    @property
    def best_fid(self) -> float | None:
        return min((f for _, f in self.fids), default=None)

    @property
    def final_fid(self) -> float | None:
        return self.fids[-1][1] if self.fids and not self.failure else None


def arm_config(base: TrainConfig, arm: str, seed: int) -> TrainConfig:
    """The arm's configuration for one seed. Options of the other kinds of tempering
    are reset: the lens arms take no σ₀, the noise and blur arms no lens-exit options
    (they end at K), and each σ₀ goes to its own arm only."""
    if arm not in ARMS:
        raise UserError(f"unknown arm {arm!r}; choose from: {', '.join(ARMS)}")
    options = {"tempering": "lens", **ARMS[arm]}
    kind = options["tempering"]
    reset = {"noise_sigma": None, "blur_sigma": None}
    if kind != "lens":
        reset = {**reset, f"{kind}_sigma": getattr(base, f"{kind}_sigma"), "lens_exit": None, "keep_lens": False,
                 "lens_zero_init": False}
    return resolve(dataclasses.replace(base, seed=seed, **{**reset, **options}))


def _same_run(a: TrainConfig, b: TrainConfig) -> bool:
    return all(getattr(a, f.name) == getattr(b, f.name) for f in dataclasses.fields(TrainConfig)
               if f.name not in RESUME_OPTIONS)


def run_arm(cfg: TrainConfig, run_dir: Path, data, progress: bool | None) -> str | None:
    """Train one run to ``cfg.steps``: skip it when finished, resume it when
    interrupted. Returns why it failed (a NaN/Inf loss), or None."""
    with runlock.acquire(run_dir):      # one process per run, also across shards and machines
        return _run_arm_locked(cfg, run_dir, data, progress)


def _run_arm_locked(cfg: TrainConfig, run_dir: Path, data, progress: bool | None) -> str | None:
    from .train import NonFiniteLoss, train

    if (run_dir / FAILED).exists():
        return (run_dir / FAILED).read_text().strip()
    resume = False
    if (run_dir / CONFIG).exists():
        if not _same_run(TrainConfig.load(run_dir / CONFIG), cfg):
            raise UserError(f"{run_dir} was trained with another configuration; choose another --out for this comparison")
        if (run_dir / CHECKPOINT).exists():
            if load_checkpoint(run_dir / CHECKPOINT)["step"] >= cfg.steps:
                return None
            resume = True
    if not resume:
        runlock.clear(run_dir)          # a run that never saved a checkpoint: start afresh (the lock file stays)
    atomic_write_bytes(run_dir / CONFIG, cfg.to_json().encode())
    try:
        train(cfg, data, run_dir, resume=resume, progress=progress)
    except NonFiniteLoss as exc:
        atomic_write_bytes(run_dir / FAILED, f"{exc}\n".encode())
        return str(exc)
    return None


def _run_arm_process(cfg_json: str, run_dir: str, log_path: str, threads: int) -> None:
    """Body of one ``compare --jobs`` worker: one run, its output in its log.
    Exit status: 0 done (or stopped on NaN, recorded in FAILED), 2 bad input,
    128 + signal when stopped by SIGINT/SIGTERM after a checkpoint."""
    import os
    import sys

    import torch

    from .data import load_dataset
    from .train import Interrupted

    log = open(log_path, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    torch.set_num_threads(threads)
    try:
        cfg = TrainConfig.from_dict(json.loads(cfg_json))
        run_arm(cfg, Path(run_dir), load_dataset(cfg.dataset, cfg.data_dir), progress=None)  # a line per log step
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


def run_parallel(runs: dict[tuple[str, int], tuple[TrainConfig, Path, Path]], jobs: int) -> dict:
    """Train ``runs`` ({key: (config, run folder, log file)}), ``jobs`` at a time,
    each in a fresh process (spawned: no state shared with this one). On the CPU
    the cores are shared out (``cpu_count // jobs`` threads each).

    SIGINT/SIGTERM: no new run starts, the running ones get SIGTERM, save a
    checkpoint and stop; then :class:`~tempered_gan.train.Interrupted` is raised
    here, and running the same command again resumes them. Returns
    {key: failure or None}, as :func:`run_arm` does."""
    import multiprocessing
    import os
    import signal
    import sys
    import time

    from .train import Interrupted

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
                cfg, run_dir, log_path = runs[key]
                log_path.parent.mkdir(parents=True, exist_ok=True)
                proc = ctx.Process(target=_run_arm_process, args=(cfg.to_json(), str(run_dir), str(log_path), threads),
                                   daemon=False)
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
    return {key: ((run_dir / FAILED).read_text().strip() if (run_dir / FAILED).exists() else None)
            for key, (_, run_dir, _) in runs.items()}


def read_run(arm: str, seed: int, run_dir: Path, failure: str | None) -> RunResult:
    from .runlog import METRICS, read_metrics
    result = RunResult(arm, seed, run_dir, failure=failure)
    for record in read_metrics(run_dir / METRICS) if (run_dir / METRICS).exists() else []:
        (result.evals if "fid" in record else result.logs).append(record)
    return result


def compare(base: TrainConfig, arms: list[str], seeds: list[int], out: Path, *, command: str,
            fail_factor: float = 2.0, fail_fid: float | None = None, progress: bool | None = None,
            jobs: int = 1, shard: "grid.Shard | None" = None, report_only: bool = False) -> Path | None:
    """Run (or finish) every arm × seed, then write ``out/report.md``.

    ``shard`` (I of N): train only that share of the runs; the report is written
    once every run of the grid has finished (else None is returned).
    ``report_only``: train nothing; report the finished runs and list the others.

    With ``jobs`` > 1 that many runs train at once, each in a process of its
    own writing to ``out/logs/<arm>-s<seed>.log`` (see :func:`run_parallel`).
    How many run at once never changes what each run trains."""
    from .data import load_dataset
    from .train import preflight

    check_number("fail_factor", fail_factor, at_least=1.0)   # below 1, even the best run would count as failed
    if fail_fid is not None:
        check_number("fail_fid", fail_fid, positive=True)
    if not base.eval_every:   # the comparison is about FID: ten evaluations per run unless told otherwise
        steps = resolve(base).steps
        base = dataclasses.replace(base, eval_every=max(1, steps // DEFAULT_EVALUATIONS))
        print(f"compare: FID every {base.eval_every} steps ({DEFAULT_EVALUATIONS} evaluations in {steps} steps; "
              "choose with --eval-every N)", file=sys.stderr)
    for kind in ("noise", "blur"):
        if getattr(base, f"{kind}_sigma") is not None and kind not in arms:
            raise UserError(f"--{kind}-sigma is σ₀ of the {kind} arm, which --arms does not include")
    configs = {(arm, seed): arm_config(base, arm, seed) for seed in seeds for arm in arms}
    run_dirs = {key: out / "runs" / f"{key[0]}-s{key[1]}" for key in configs}
    if not report_only:
        first = configs[arms[0], seeds[0]]
        data = load_dataset(first.dataset, first.data_dir)
        for cfg in configs.values():
            preflight(cfg, data)
    # Lock out, check the grid manifest, pick this shard's runs (tempered_gan/grid.py).
    mine = grid.open_grid(out, configs, run_dirs, shard, report_only=report_only)
    todo = {key: configs[key] for key in mine}
    if jobs > 1:
        failures = run_parallel({key: (cfg, run_dirs[key], out / "logs" / f"{key[0]}-s{key[1]}.log")
                                 for key, cfg in todo.items()}, jobs)
    else:
        failures = {key: run_arm(cfg, run_dirs[key], data, progress) for key, cfg in todo.items()}
    others: list[str] = []
    if shard is not None or report_only:   # the other shards' runs: finished, running, unfinished or missing
        failures, others = grid.survey(configs, run_dirs)
        if others and not report_only:
            print(f"compare: shard {shard} is done; {len(failures)} of {len(configs)} runs of the grid are finished. "
                  "The last shard to finish writes the report (or run the command with --report-only)", file=sys.stderr)
            return None
        if not failures:
            raise UserError(f"no run of the grid in {out} has finished yet; nothing to report")
    shown = [arm for arm in arms if any(key[0] == arm for key in failures)]
    results = [read_run(arm, seed, run_dirs[arm, seed], failures[arm, seed]) for arm, seed in configs
               if (arm, seed) in failures]
    with runlock.waiting(out / ".report.lock"):   # shards finishing together: one report at a time
        report = write_report(results, shown, out, command=command, base=configs[arms[0], seeds[0]],
                              fail_factor=fail_factor, fail_fid=fail_fid,
                              arm_configs={arm: configs[arm, seeds[0]] for arm in shown})
        grid.note_unfinished(report, others, len(configs))
    return report


# --- the report ------------------------------------------------------------------

def _baseline_lines(arm_configs: dict[str, TrainConfig]) -> list[str]:
    """How the baseline arms temper: σ(t) = σ₀·λ(t) with their σ₀, ending at K."""
    parts = []
    for arm, cfg in arm_configs.items():
        if cfg.tempering == "noise":
            parts.append(f"{ARM_LABELS[arm]}: N(0, σ(t)²) added to both of D's inputs, σ₀ = {cfg.noise_sigma:g}")
        elif cfg.tempering == "blur":
            parts.append(f"{ARM_LABELS[arm]}: real images blurred by a Gaussian of σ(t) pixels, σ₀ = {cfg.blur_sigma:g} px")
    if not parts:
        return []
    k = next(iter(arm_configs.values())).k
    return [f"Baselines, σ(t) = σ₀·λ(t) on the sine schedule, gone after K = {k}: " + "; ".join(parts) + "."]


def _mean_std(values: list[float], digits: str = ".3g") -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:{digits}}"
    spread = ".0f" if digits == ".0f" else ".2g"
    return f"{statistics.mean(values):{digits}} ± {statistics.stdev(values):{spread}}"


def failure_threshold(results: list[RunResult], fail_factor: float, fail_fid: float | None) -> float:
    """Final FID above which a run counts as failed: ``fail_fid`` when given, else
    ``fail_factor`` × the best FID that any run of the comparison reached."""
    if fail_fid is not None:
        return fail_fid
    bests = [r.best_fid for r in results if r.best_fid is not None]
    return fail_factor * min(bests) if bests else math.inf


def summarise(results: list[RunResult], arms: list[str], fail_factor: float,
              fail_fid: float | None = None) -> tuple[list[dict], float, float | None]:
    """One row per arm: best/final FID, steps to the no-lens arm's best, failures, coverage."""
    threshold = failure_threshold(results, fail_factor, fail_fid)
    baseline = [r.best_fid for r in results if r.arm == "none" and r.best_fid is not None]
    target = statistics.mean(baseline) if baseline else None
    rows = []
    for arm in arms:
        runs = [r for r in results if r.arm == arm]
        failed = [r for r in runs if r.failure or r.final_fid is None or r.final_fid > threshold]
        reach = []
        for r in runs:
            hit = next((step for step, fid in r.fids if target is not None and fid <= target), None)
            if hit is not None:
                reach.append(hit)
        finals = [r.evals[-1] for r in runs if r.evals]
        row = {
            "arm": arm, "seeds": len(runs),
            "best_fid": _mean_std([r.best_fid for r in runs if r.best_fid is not None]),
            "final_fid": _mean_std([r.final_fid for r in runs if r.final_fid is not None]),
            "reached": (f"{_mean_std([float(s) for s in reach], '.0f')} ({len(reach)}/{len(runs)} seeds)"
                        if target is not None else "–"),
            "failed": f"{len(failed)}/{len(runs)}",
        }
        for key in ("modes", "kl", "high_quality"):
            values = [e[key] for e in finals if e.get(key) is not None]
            if values:
                row[key] = _mean_std([float(v) for v in values])
        rows.append(row)
    return rows, threshold, target


def write_report(results: list[RunResult], arms: list[str], out: Path, *, command: str, base: TrainConfig,
                 fail_factor: float, fail_fid: float | None = None,
                 arm_configs: dict[str, TrainConfig] | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .runlog import save_figure

    # FID against step, one line per seed, arms in their colours.
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        if r.fids:
            steps, fids = zip(*r.fids)
            ax.plot(steps, fids, color=ARM_COLOURS[r.arm], alpha=0.8, marker=".",
                    label=ARM_LABELS[r.arm] if r.seed == min(x.seed for x in results if x.arm == r.arm) else None)
    feature = next((e.get("features") for r in results for e in r.evals), "?")
    ax.set(xlabel="step", ylabel="FID")
    ax.set_title("FID against step\n" + textwrap.fill(f"features: {feature}", 90), fontsize=9)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "fid.png", dpi=100)
    plt.close(fig)

    # λ and the lens reconstruction error against step.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for r in results:
        logs = [x for x in r.logs if x.get("lambda") is not None]
        if logs:
            ax1.plot([x["step"] for x in logs], [x["lambda"] for x in logs], color=ARM_COLOURS[r.arm])
            ax2.plot([x["step"] for x in logs], [max(x["loss_lens_rec"], 1e-12) for x in logs], color=ARM_COLOURS[r.arm])
    ax1.set(xlabel="step", ylabel="λ", title="λ(t) (noise and blur: σ(t) = σ₀·λ(t))")
    ax2.set(xlabel="step", ylabel="‖X − T(X)‖² (mean)", title="D's real input T(X) against X\n"
            "(T = L, noise or blur; the lens's reconstruction error)", yscale="log")
    fig.tight_layout()
    save_figure(fig, out / "lens.png", dpi=100)
    plt.close(fig)

    # Sample strips (first seed of each arm) at up to four stages.
    strips = []
    for arm in arms:
        r = min((x for x in results if x.arm == arm), key=lambda x: x.seed)
        grids = sorted((r.run_dir / "samples").glob("step_*.png")) if (r.run_dir / "samples").exists() else []
        if grids:
            picks = sorted({grids[round(i * (len(grids) - 1) / 3)] for i in range(4)})
            strips.append((arm, picks))
    if strips:
        cols = max(len(p) for _, p in strips)
        fig, axes = plt.subplots(len(strips), cols, figsize=(4.5 * cols, 2.2 * len(strips)), squeeze=False)
        for row, (arm, picks) in enumerate(strips):
            for col in range(cols):
                ax = axes[row][col]
                ax.axis("off")
                if col < len(picks):
                    ax.imshow(plt.imread(picks[col]))
                    ax.set_title(f"{ARM_LABELS[arm]}, step {int(picks[col].stem.split('_')[1])}", fontsize=9)
        fig.suptitle("samples: G(Z) | what D sees as real (L(X), noisy or blurred X) | X")
        fig.tight_layout()
        save_figure(fig, out / "samples.png", dpi=100)
        plt.close(fig)

    rows, threshold, target = summarise(results, arms, fail_factor, fail_fid)
    extra = [k for k in ("modes", "kl", "high_quality") if any(k in row for row in rows)]
    header = ["arm", "seeds", "best FID", "final FID", "step reaching no-lens best", "failed", *extra]
    lines = [
        f"# Comparison: {base.dataset}, {base.loss}",
        "",
        f"Arms: {', '.join(ARM_LABELS[a] for a in arms)}; seeds: "
        f"{', '.join(str(s) for s in sorted({r.seed for r in results}))}. For each seed all arms start from the same "
        "G and D weights, data order and noise.",
        f"FID: {feature}, {base.fid_samples} generated samples against the real data X, every {base.eval_every} steps.",
        *_baseline_lines(arm_configs or {}),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        cells = [ARM_LABELS[row["arm"]], str(row["seeds"]), row["best_fid"], row["final_fid"], row["reached"], row["failed"]]
        lines.append("| " + " | ".join(cells + [row.get(k, "–") for k in extra]) + " |")
    lines += [
        "",
        "Best and final FID: mean ± standard deviation over seeds. "
        + (f"'Step reaching no-lens best': first evaluation at which a run's FID was at most the no-lens arm's "
           f"mean best FID ({target:.3g}), mean over the seeds that reached it. " if target is not None else "")
        + "A run counts as failed when it stopped on a NaN/Inf loss or its final FID exceeds "
        + (f"{threshold:.3g} (--fail-fid)." if fail_fid is not None else
           f"{fail_factor:g} × the best FID of any run here ({threshold:.3g}; --fail-factor, or set --fail-fid)."),
        "",
    ]
    for r in results:
        if r.failure:
            lines.append(f"- {r.arm}, seed {r.seed}: {r.failure}")
    lines += ["![FID against step](fid.png)", "", "![λ and lens reconstruction](lens.png)", ""]
    if strips:
        lines += ["![samples](samples.png)", ""]
    lines += ["## How this was produced", "", "```", command, "```", "", "Configuration of the first run "
              "(other runs differ only in `seed` and their arm's tempering options: `lens`, `lambda_value`, "
              "`lens_exit`, `lens_zero_init`, `tempering`, `noise_sigma`, `blur_sigma`):", "", "```json", base.to_json(),
              "```", ""]
    report = out / "report.md"
    atomic_write_bytes(report, "\n".join(lines).encode())
    return report
