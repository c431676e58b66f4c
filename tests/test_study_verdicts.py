"""The image studies' pre-registered verdicts (docs/results/studies/verdicts.py) on
hand-made metric files: the stability rule of study A and the late-collapse count of study B."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "studies" / "verdicts.py"


@pytest.fixture(scope="module")
def verdicts():
    spec = importlib.util.spec_from_file_location("study_verdicts", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(out: Path, arm: str, seed: int, evals: list[tuple[int, float, float]]) -> None:
    run = out / "runs" / f"{arm}-s{seed}"
    run.mkdir(parents=True)
    lines = [json.dumps({"step": step, "fid": fid, "modes": modes, "kl": 0.1}) for step, fid, modes in evals]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def study_a(tmp_path: Path, plain_fails: set[int], lens_fails: set[int], seeds=range(8)) -> list[str]:
    """Good runs end at FID 10 with 10 classes; a failed one at FID 100 (above 2 × the best, 10)."""
    for seed in seeds:
        for arm, fails in (("none", plain_fails), ("sine", lens_fails)):
            final = 100.0 if seed in fails else 10.0
            write_run(tmp_path, arm, seed, [(500, 50.0, 10), (1000, final, 10)])
    return tmp_path


@pytest.mark.parametrize("plain_fails, lens_fails, verdict", [
    ({0, 1, 2, 3, 4, 5, 6}, set(), "reproduced"),            # 7/8 against 0/8: sign test p = 0.016
    ({0, 1, 2, 3, 4}, set(), "cannot tell"),                 # 5 discordant seeds: p = 0.0625, not < 0.05
    ({0, 1, 2, 3, 4, 5, 6}, {0, 1, 2, 3, 4, 5, 6}, "cannot tell"),   # both fail: no discordant seed
    ({0}, {0, 1, 2, 3, 4, 5, 6, 7}, "contradicted"),         # 1/8: Wilson upper bound 47 % < 50 %
    ({0, 1}, set(), "cannot tell"),                          # 2/8: Wilson upper bound 59 %
])
def test_stability_rule(verdicts, tmp_path, plain_fails, lens_fails, verdict):
    lines = verdicts.stability(verdicts.read_runs(study_a(tmp_path, plain_fails, lens_fails)))
    assert lines[-1].endswith(f": {verdict}")


def test_few_classes_and_nan_fail(verdicts, tmp_path):
    """A good FID with 7 of 10 classes fails (--fail-modes 8); so does a NaN last evaluation."""
    write_run(tmp_path, "none", 0, [(500, 10.0, 7)])
    write_run(tmp_path, "none", 1, [(500, 10.0, 10), (1000, float("nan"), 10)])
    write_run(tmp_path, "none", 2, [(500, 10.0, 8)])
    for seed in range(3):
        write_run(tmp_path, "sine", seed, [(500, 10.0, 10)] if seed != 1 else [(500, 10.0, 10), (1000, 10.0, 10)])
    lines = verdicts.stability(verdicts.read_runs(tmp_path))
    assert any(line.startswith("failed: no lens 2/3") for line in lines)
    assert any("sine lens 0/3" in line for line in lines)


def test_late_collapse(verdicts, tmp_path):
    """Lost modes late: the last evaluation more than 10 % below the run's own maximum from
    step 5000 on; a higher maximum before step 5000 does not count."""
    write_run(tmp_path, "none", 0, [(4000, 500.0, 900), (5000, 400.0, 800), (6000, 300.0, 850), (7000, 300.0, 760)])
    write_run(tmp_path, "none", 1, [(4000, 500.0, 990), (5000, 400.0, 800), (6000, 300.0, 780)])
    write_run(tmp_path, "sine", 0, [(5000, 400.0, 800), (6000, 300.0, 766)])
    lines = verdicts.late_collapse(verdicts.read_runs(tmp_path))
    assert "none: 1 of 2 runs lost modes late" in "\n".join(lines)
    assert "sine: 0 of 1 runs lost modes late" in "\n".join(lines)
