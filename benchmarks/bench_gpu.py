"""The CUDA fast path (``--cuda-graphs``) against the eager path, side by side
in one process. Not yet run: written on a machine without a GPU;
benchmarks/gpu_session.sh runs it on a CUDA GPU. Without CUDA it
says so in one line and exits with status 2.

Fashion-MNIST (or --dataset), the paper's nets at batch 64: DCGAN (C = 64),
LSGAN (C = 64) and WGAN-GP (C = 128), each with and without the paper's lens
(32 maps × 8 blocks): the default eager path ("eager"), the same trainer as the
graphs run op by op with their optimisers ("eager, graph optimisers"), and
CUDA graphs, plus the speed options on the fast path. Arms run in interleaved rounds (every arm keeps its
own trainer; the order rotates), each round timed with a device sync at its
end; the table gives medians. Then:

* agreement: losses of the fast path and the eager path over ``--agree-steps``
  steps from the same initial state, next to two eager runs of the same state
  (the run-to-run spread of the eager path itself);
* concurrent runs: ``--jobs`` (default 1, 3 and 6) runs as separate processes
  started together, each timed over the same wall-clock window;
* the device's measured matrix-product ceilings, for the floor of the lens.

    PYTHONPATH=. python3 benchmarks/bench_gpu.py --data-dir DIR
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import table  # noqa: E402

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.training.cuda_graphs import EagerRunner
from tempered_gan.training.scalars import stacked
from tempered_gan.training.trainer import Trainer

ARMS = {   # name: TrainConfig options
    "gan": dict(loss="gan", tempering="none"),
    "gan+lens": dict(loss="gan", schedule="sine"),
    "lsgan": dict(loss="lsgan", tempering="none"),
    "lsgan+lens": dict(loss="lsgan", schedule="sine"),
    "wgan-gp": dict(loss="wgan-gp", tempering="none"),
    "wgan-gp+lens": dict(loss="wgan-gp", schedule="sine"),
}
SPEED_OPTIONS = {
    "channels-last": dict(channels_last=True),
    "bf16": dict(amp="bf16"),
    "bf16+channels-last": dict(amp="bf16", channels_last=True),
}


def config(args, device: str = "cuda", **options) -> TrainConfig:
    base = dict(dataset=args.dataset, data_dir=args.data_dir, device=device, k=10 ** 6, steps=10 ** 7, seed=0)
    return resolve(TrainConfig(**{**base, **options}))


def make(args, data, eager: bool = False, graphs: bool = True, **options) -> Trainer:
    """A trainer on CUDA: CUDA graphs (``graphs``), the default eager path (not
    ``graphs``), or the graphs' trainer run op by op (``eager``)."""
    trainer = Trainer.create(config(args, cuda_graphs=graphs, **options), data, torch.device("cuda"))
    if eager and graphs:
        trainer.runner = EagerRunner(trainer, on_device=True)
    return trainer


def steps_per_s(trainers: dict[str, Trainer], rounds: int, seconds: float) -> dict[str, float]:
    """Median steps/s of each trainer over interleaved rounds of about ``seconds`` each."""
    for tr in trainers.values():          # warm-up: capture, cuDNN search, optimiser states
        for _ in range(10):
            tr.step()
    torch.cuda.synchronize()
    per_round = {}
    for name, tr in trainers.items():     # steps per round from a short probe
        start = time.perf_counter()
        for _ in range(5):
            tr.step()
        torch.cuda.synchronize()
        per_round[name] = max(5, int(seconds * 5 / (time.perf_counter() - start)))
    rates: dict[str, list[float]] = {n: [] for n in trainers}
    names = list(trainers)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            tr, n = trainers[name], per_round[name]
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(n):
                tr.step()
            torch.cuda.synchronize()
            rates[name].append(n / (time.perf_counter() - start))
    return {n: statistics.median(v) for n, v in rates.items()}


def speed(args, data) -> list[dict]:
    rows = []
    for arm, options in ARMS.items():
        trainers = {"eager": make(args, data, graphs=False, **options),
                    "eager, graph optimisers": make(args, data, eager=True, **options),
                    "graph": make(args, data, **options)}
        if arm == "gan+lens" or (args.all_options and "lens" in arm):
            for name, extra in SPEED_OPTIONS.items():
                trainers[f"graph {name}"] = make(args, data, **options, **extra)
                if args.all_options:
                    trainers[f"eager {name}"] = make(args, data, graphs=False, **options, **extra)
        rates = steps_per_s(trainers, args.rounds, args.seconds)
        for name, rate in rates.items():
            rows.append({"arm": arm, "path": name, "steps_per_s": rate, "ms_per_step": 1000 / rate,
                         "vs_eager": rate / rates["eager"]})
            print(json.dumps(rows[-1]), flush=True)
        del trainers
        torch.cuda.empty_cache()
    return rows


def agreement(args, data) -> list[dict]:
    """Per-step losses from one initial state: fast vs eager, and eager vs eager."""
    rows = []
    for arm in args.agree_arms.split(","):
        losses = {}
        for name, eager in (("eager", True), ("eager again", True), ("graph", False)):   # same optimisers
            tr = make(args, data, eager=eager, **ARMS[arm])
            losses[name] = torch.stack([stacked(tr.step()).clone() for _ in range(args.agree_steps)]).double().cpu()
        ref = losses["eager"]
        for name in ("eager again", "graph"):
            diff = (losses[name] - ref).abs()
            rel = diff / ref.abs().clamp_min(1e-3)
            first = int((diff > 0).any(1).float().argmax()) + 1 if (diff > 0).any() else None
            rows.append({"arm": arm, "vs eager": name, "max_abs": float(diff.max()), "max_rel": float(rel.max()),
                         "max_rel_first_10": float(rel[:10].max()), "first_step_differing": first,
                         "deterministic_cudnn": torch.backends.cudnn.deterministic})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def single(args) -> None:
    """One run for the concurrency test: warm up, wait for the common start, then count steps."""
    data = load_dataset(args.dataset, args.data_dir)
    tr = make(args, data, **ARMS[args.single])
    for _ in range(20):
        tr.step()
    torch.cuda.synchronize()
    late = time.time() - args.start_at      # > 0: this process was not ready at the common start
    while time.time() < args.start_at:
        time.sleep(0.01)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for _ in range(10):
            tr.step()
        n += 10
    torch.cuda.synchronize()
    print(json.dumps({"steps_per_s": n / (time.perf_counter() - start), "late_s": max(0.0, late)}), flush=True)


def concurrent(args) -> list[dict]:
    rows = []
    for arm in args.concurrent_arms.split(","):
        for jobs in [int(j) for j in args.jobs.split(",")]:
            # time enough for every process to start and warm up (a late one is reported: its window shifts)
            start_at = time.time() + args.start_delay + jobs
            cmd = [sys.executable, __file__, "--single", arm, "--start-at", str(start_at), "--seconds",
                   str(args.window), "--dataset", args.dataset] + (["--data-dir", args.data_dir] if args.data_dir else [])
            procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
            results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            rates = [r["steps_per_s"] for r in results]
            rows.append({"arm": arm, "processes": jobs, "each": statistics.mean(rates), "aggregate": sum(rates),
                         "late_s": max(r["late_s"] for r in results)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def ceilings() -> dict:
    out = {}
    for name, dtype, tf32 in (("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
        b = torch.randn(8192, 8192, device="cuda", dtype=dtype)
        for _ in range(3):
            a @ b
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            a @ b
        end.record()
        torch.cuda.synchronize()
        out[f"{name}_tflops"] = 2 * 8192 ** 3 * 10 / (start.elapsed_time(end) / 1000) / 1e12
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per arm per round")
    parser.add_argument("--agree-steps", type=int, default=200)
    parser.add_argument("--deterministic", action="store_true", help="deterministic cuDNN for the agreement check")
    parser.add_argument("--agree-arms", default="gan+lens,lsgan+lens,wgan-gp+lens")
    parser.add_argument("--jobs", default="1,3,6", help="numbers of concurrent processes to time, e.g. 1,3,6")
    parser.add_argument("--start-delay", type=float, default=30.0,
                        help="seconds the concurrent processes get to start and warm up (plus one per process)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds timed in the concurrency test")
    parser.add_argument("--concurrent-arms", default="gan+lens,gan")
    parser.add_argument("--all-options", action="store_true", help="speed options for every lens arm, eager too")
    parser.add_argument("--parts", default="ceilings,speed,agreement,concurrent")
    parser.add_argument("--json", help="write every result to this file")
    parser.add_argument("--single", choices=sorted(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    return parser


def main() -> int:
    args = build_parser().parse_args()
    if not torch.cuda.is_available():
        print(f"bench_gpu.py: needs a CUDA GPU; this machine has none that torch {torch.__version__} can use",
              file=sys.stderr)
        return 2
    if args.single:
        return single(args)

    props = torch.cuda.get_device_properties(0)
    print(f"date {time.strftime('%Y-%m-%d %H:%M')}; {props.name}, {props.multi_processor_count} SMs; "
          f"torch {torch.__version__}; CUDA {torch.version.cuda}; cuDNN {torch.backends.cudnn.version()}", flush=True)
    data = load_dataset(args.dataset, args.data_dir)
    results = {"device": props.name, "torch": torch.__version__}
    parts = args.parts.split(",")
    if "ceilings" in parts:
        results["ceilings"] = ceilings()
        print(json.dumps(results["ceilings"]), flush=True)
    if "speed" in parts:
        results["speed"] = speed(args, data)
    if "agreement" in parts:
        torch.backends.cudnn.deterministic = args.deterministic
        results["agreement"] = agreement(args, data)
        torch.backends.cudnn.deterministic = False
    if "concurrent" in parts:
        results["concurrent"] = concurrent(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if "speed" in results:
        table(["arm", "path", "steps/s", "ms/step", "× eager"],
              [[r["arm"], r["path"], r["steps_per_s"], r["ms_per_step"], r["vs_eager"]] for r in results["speed"]])
    if "agreement" in results:
        table(["arm", "against eager", "max |Δ loss|", "max rel", "first differing step"],
              [[r["arm"], r["vs eager"], r["max_abs"], r["max_rel"], r["first_step_differing"]]
               for r in results["agreement"]])
    if "concurrent" in results:
        table(["arm", "processes", "steps/s each", "aggregate", "latest start (s)"],
              [[r["arm"], r["processes"], r["each"], r["aggregate"], r["late_s"]] for r in results["concurrent"]])


if __name__ == "__main__":
    sys.exit(main())
