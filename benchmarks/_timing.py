"""A tiny timing helper shared by the benchmarks.

The machines these run on are shared and their load varies, so no benchmark
reports an absolute time on its own: every figure is a ratio of arms timed
side by side in one process, interleaved (A, B, A, B, ...; the order of the
arms rotates every repetition), after warm-up, and summarised by medians.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from typing import Callable

import torch


def add_threads_option(parser) -> None:
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: robust on a shared machine, see docs/PERFORMANCE.md)")


def parse_and_setup(parser):
    """The benchmark's arguments, with ``--threads``, after :func:`setup` has fixed and printed them."""
    add_threads_option(parser)
    args = parser.parse_args()
    setup(args.threads)
    return args


def setup(threads: int) -> int:
    """Fix the number of intra-op threads and print it with the machine, so that a
    pasted output says where it was measured."""
    torch.set_num_threads(threads)
    print(f"date     {subprocess.run(['date'], capture_output=True, text=True).stdout.strip()}")
    print(f"machine  {os.cpu_count()} cores ({cpu_model()}), {platform.python_implementation()} "
          f"{platform.python_version()}, torch {torch.__version__}")
    print(f"threads  torch.set_num_threads({torch.get_num_threads()}); load average at start "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return threads


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def interleaved(arms: dict[str, Callable[[], object]], reps: int, warmup: int = 1,
                inner: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each arm: ``warmup`` untimed calls of every arm, then
    ``reps`` rounds in which every arm runs ``inner`` calls back to back (timed
    together, divided by ``inner``); the order of the arms rotates each round."""
    names = list(arms)
    for name in names:
        for _ in range(warmup):
            arms[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            start = time.perf_counter()
            for _ in range(inner):
                arms[name]()
            times[name].append((time.perf_counter() - start) / inner)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_ratio(num: list[float], den: list[float]) -> tuple[float, float, float]:
    """Median, min and max of the per-round ratios num[i] / den[i] (rounds are
    paired because they ran next to each other, under the same load)."""
    ratios = [a / b for a, b in zip(num, den)]
    return statistics.median(ratios), min(ratios), max(ratios)


def table(headers: list[str], rows: list[list]) -> None:
    """Print a Markdown table (pasted into docs/PERFORMANCE.md as is)."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)
