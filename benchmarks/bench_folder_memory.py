"""Memory of a folder larger than it should need: the decoded cache is read through a memory map.

Writes ``--images`` random PNGs of mixed sizes into a temporary folder, decodes them at
``--resolution`` into the cache (``tempered_gan.data.image_folder``, worker processes), then, in
a fresh process, loads the data set and draws ``--batches`` random batches of 64, as
training does. It reports that process's anonymous memory (``RssAnon``: what must fit in
RAM) and its file-backed pages (``RssFile``: the page cache, which the kernel reclaims)
beside the cache's size. Target: the anonymous memory stays well below the cache (a
fraction of it, not a copy of it).

    .venv/bin/python benchmarks/bench_folder_memory.py --images 8000 --resolution 128
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import sys, torch
from tempered_gan.data import load_dataset
def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024
before = status("RssAnon:")
data = load_dataset("folder", sys.argv[1], cache_dir=sys.argv[2], resolution=int(sys.argv[3]))
g = torch.Generator().manual_seed(0)
for _ in range(int(sys.argv[4])):
    data.batch(torch.randint(len(data), (64,), generator=g))
print(before, status("RssAnon:"), status("RssFile:"), len(data))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batches", type=int, default=500)
    args = parser.parse_args()
    import numpy as np
    from PIL import Image

    from tempered_gan.data.loaders import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp) / "images", Path(tmp) / "cache"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.images):
            h, w = rng.integers(100, 220, 2)
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:06d}.png",
                                                                                  compress_level=1)
        start = time.perf_counter()
        load_dataset("folder", str(folder), cache_dir=str(cache), resolution=args.resolution)
        decode = time.perf_counter() - start
        size = sum(p.stat().st_size for p in cache.glob("*.npy"))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", PROBE, str(folder), str(cache), str(args.resolution),
                              str(args.batches)], capture_output=True, text=True, env=env, check=True).stdout
        before, anon, file_pages, n = map(int, out.split())
    mib = 2 ** 20
    print(f"{n} images at {args.resolution}², decoded in {decode:.1f} s on {os.cpu_count()} CPUs; "
          f"cache {size / mib:.0f} MiB")
    print(f"after {args.batches} batches of 64: anonymous memory {anon / mib:.0f} MiB "
          f"({(anon - before) / mib:+.0f} MiB for the data set, {(anon - before) / size:.1%} of the cache); "
          f"file-backed pages {file_pages / mib:.0f} MiB (page cache, reclaimable)")


if __name__ == "__main__":
    main()
