"""Weights after N steps, bit for bit, against a fingerprint the code wrote before a refactor.

``tests/training/fixtures/weights_fingerprint.json`` was made by the code at 3eca64b (before
train.py, metrics.py and cli.py were split) with::

    PYTHONPATH=. python tests/training/test_bit_identity.py --write

Each case trains a tiny run through the library's loop (``train``) on the CPU,
one thread, and hashes every tensor of the checkpoint's G, D and lens weights
and optimiser states. The same computation on the same kind of machine gives the
same bytes; another PyTorch or another CPU instruction set may legitimately round
differently, so the test compares only where the recorded machine key (torch
version, CPU capability, and the instruction sets oneDNN and MKL dispatch to)
matches this machine's, and otherwise skips, saying why.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import TINY_IMAGES

from tempered_gan.util.renamed import CHECKPOINT_KEYS, renamed

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "weights_fingerprint.json"
TINY_POINTS = dict(dataset="mixture-ring8", batch_size=64, width=16, lens_width=8, lens_blocks=2)
QUIET = dict(log_every=5, sample_every=1000, checkpoint_every=1000)
# name: options of TrainConfig (images use a 40-image MNIST written by tests/helpers.write_mnist).
CASES = {
    "default-ring-50": dict(steps=50, log_every=10),   # the default run's configuration, 50 steps (K = 25)
    "ring-drop-past-k": dict(**TINY_POINTS, steps=30, k=12, **QUIET),
    "ring-blend": dict(**TINY_POINTS, steps=30, k=10, lens_exit="blend", lens_exit_steps=6, **QUIET),
    "ring-converge": dict(**TINY_POINTS, steps=30, k=8, lens_exit="converge", lens_exit_tolerance=10.0,
                          lens_exit_patience=4, **QUIET),
    "ring-noise": dict(**TINY_POINTS, steps=20, k=10, tempering="noise", **QUIET),
    "ring-constant": dict(**TINY_POINTS, steps=12, schedule="constant", **QUIET),
    "ring-none": dict(**TINY_POINTS, steps=12, tempering="none", **QUIET),
    "images-gan-sine": dict(**TINY_IMAGES, loss="gan", steps=6, k=4, **QUIET),
    "images-lsgan": dict(**TINY_IMAGES, loss="lsgan", steps=5, k=3, lens_exit="keep", **QUIET),
    "images-wgan-gp": dict(**TINY_IMAGES, loss="wgan-gp", steps=4, k=3, lens_exit="blend", lens_exit_steps=2,
                           **QUIET),
    "images-noise": dict(**TINY_IMAGES, loss="gan", steps=5, k=3, tempering="noise", **QUIET),
    "images-blur": dict(**TINY_IMAGES, loss="lsgan", steps=5, k=3, tempering="blur", **QUIET),
    "images-rmsprop-sum": dict(**TINY_IMAGES, loss="wgan-gp", steps=3, optimizer="rmsprop", reconstruction="sum",
                               critic_steps=2, **QUIET),
}


# One convolution (oneDNN) and one matrix product (MKL) in a fresh process whose libraries say what they run on.
_PROBE = ("import torch; torch.set_num_threads(1); "
          "torch.nn.functional.conv2d(torch.ones(2, 3, 8, 8), torch.ones(4, 3, 3, 3)); torch.ones(8, 8) @ torch.ones(8, 8)")


@functools.lru_cache(maxsize=1)
def machine_key() -> str:
    """torch's version and CPU capability, and the instruction sets its kernels dispatch to here.

    The capability alone (ATen's AVX2 / AVX512) does not decide the rounding: oneDNN picks its
    convolution kernels by the CPU's full instruction set (AMX, for one) and ``ONEDNN_MAX_CPU_ISA``,
    MKL its matrix products by the CPU's vendor and instruction set (on one machine, under
    ``ONEDNN_MAX_CPU_ISA=AVX2`` the capability still read AVX512 and every image case failed).
    """
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "MKL_VERBOSE": "1"}
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env)
    said = probe.stdout + probe.stderr
    onednn = re.search(r"onednn_verbose,.*cpu,isa:([^\n]*)", said)
    mkl = re.search(r"MKL_VERBOSE oneMKL .*? for (.*?), Lnx", said)
    return (f"torch {torch.__version__}, cpu {torch.backends.cpu.get_cpu_capability()}, "
            f"oneDNN {onednn[1].strip() if onednn else 'not used'}, MKL {mkl[1] if mkl else 'not used'}")


def _digest(value) -> str | None:
    """sha256 of a nested state (tensors by their bytes, dtype and shape; numbers by repr)."""
    h = hashlib.sha256()

    def feed(v):
        if torch.is_tensor(v):
            v = v.detach().cpu().contiguous()
            h.update(f"T{v.dtype}{tuple(v.shape)}".encode())
            h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(v, dict):
            for k in sorted(v, key=str):
                h.update(f"K{k!r}".encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            h.update(f"L{len(v)}".encode())
            for x in v:
                feed(x)
        else:
            h.update(f"V{v!r}".encode())

    if value is None:
        return None
    feed(value)
    return h.hexdigest()


def fingerprint(name: str, workdir: Path) -> dict:
    """Train case ``name`` in ``workdir`` and hash its final checkpoint."""
    from helpers import write_mnist

    from tempered_gan.config.train_config import TrainConfig, resolve
    from tempered_gan.data.loaders import load_dataset
    from tempered_gan.training.checkpoint import CHECKPOINT, load_checkpoint
    from tempered_gan.training.loop import train

    options = dict(CASES[name], device="cpu")
    if options.get("dataset") == "mnist":
        options["data_dir"] = str(write_mnist(workdir / "mnist", n=40))
    cfg = resolve(TrainConfig(**options))
    (workdir / name).mkdir(parents=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg, load_dataset(cfg.dataset, cfg.data_dir), workdir / name, progress=False)
    finally:
        torch.set_num_threads(threads)
    state = load_checkpoint(workdir / name / CHECKPOINT)
    out = {key: _digest(state[key]) for key in ("G", "D", "lens", "opt_g", "opt_d", "opt_lens")}
    out.update(step=state["step"], lens_exited_at=state["lens_exited_at"])
    return out


def _recorded() -> dict:
    """The fixture, its keys in today's names (it was written before the lens's end had one word)."""
    recorded = json.loads(FIXTURE.read_text())
    recorded["cases"] = {name: renamed(case, CHECKPOINT_KEYS) for name, case in recorded["cases"].items()}
    return recorded


@pytest.mark.parametrize("name", sorted(CASES))
def test_weights_after_n_steps_are_bit_identical_to_the_recorded_ones(name, tmp_path, capsys):
    recorded = _recorded()
    if recorded["machine"] != machine_key():
        pytest.skip(f"fingerprint recorded on {recorded['machine']!r}; this machine is {machine_key()!r} "
                    "(other rounding is legitimate there)")
    assert fingerprint(name, tmp_path) == recorded["cases"][name]


def test_the_fixture_covers_every_case():
    assert sorted(_recorded()["cases"]) == sorted(CASES)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as tmp:
        cases = {name: fingerprint(name, Path(tmp)) for name in CASES}
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps({"machine": machine_key(), "made_by": "3eca64b", "cases": cases}, indent=1) + "\n")
    print(f"wrote {FIXTURE}")
