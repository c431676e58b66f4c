"""The image studies' pre-registered verdicts (docs/results/studies/verdicts.py) on
hand-made metric files: the stability rule of study A and the late-collapse count of study B."""
import importlib.util
import json
from pathlib import Path

import pytest
from helpers import ROOT

SCRIPT = ROOT / "docs" / "results" / "studies" / "verdicts.py"
END = 1000


@pytest.fixture(scope="module")
def verdicts():
    spec = importlib.util.spec_from_file_location("study_verdicts", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(out: Path, arm: str, seed: int, evals: list[tuple[int, float, float]], failed: str | None = None) -> None:
    run = out / "runs" / f"{arm}-s{seed}"
    run.mkdir(parents=True)
    lines = [json.dumps({"step": step, "fid": fid, "modes": modes, "kl": 0.1}) for step, fid, modes in evals]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if failed:
        (run / "FAILED").write_text(failed + "\n")


def study_a(out: Path, plain_fails: set[int], lens_fails: set[int], seeds=range(8)) -> Path:
    """Good runs end at FID 10 with 10 classes; a failed one at FID 100 (above 2 × the best, 10)."""
    for seed in seeds:
        for arm, fails in (("none", plain_fails), ("sine", lens_fails)):
            final = 100.0 if seed in fails else 10.0
            write_run(out, arm, seed, [(500, 50.0, 10), (END, final, 10)])
    return out


def verdict_line(lines: list[str]) -> str:
    return next(line for line in lines if line.startswith("stability verdict"))


@pytest.mark.parametrize("plain_fails, lens_fails, verdict", [
    ({0, 1, 2, 3, 4, 5, 6}, set(), "reproduced"),            # 7/8 against 0/8: sign test p = 0.016
    ({0, 1, 2, 3, 4, 5}, set(), "reproduced"),               # 6 discordant seeds: p = 0.031
    ({0, 1, 2, 3, 4, 5}, {7}, "cannot tell"),                # 6 against 1 discordant: p = 0.125
    ({0, 1, 2, 3, 4}, set(), "cannot tell"),                 # 5 discordant seeds: p = 0.0625, not < 0.05
    # (so the sign test, not "at least 5 of 8", is what binds: fewer than 6 plain failures never reproduce)
    ({0, 1, 2, 3, 4, 5, 6}, {0, 1, 2, 3, 4, 5, 6}, "cannot tell"),   # both fail: no discordant seed
    ({0}, {0, 1, 2, 3, 4, 5, 6, 7}, "contradicted"),         # 1/8: Wilson 95 % upper bound 47 % < 50 %
    ({0, 1}, set(), "cannot tell"),                          # 2/8: Wilson 95 % upper bound 59 %
])
def test_stability_rule(verdicts, tmp_path, plain_fails, lens_fails, verdict):
    lines = verdicts.stability(verdicts.read_runs(study_a(tmp_path, plain_fails, lens_fails)), END)
    assert verdict_line(lines).endswith(f": {verdict}")


def test_failure_threshold_is_twice_the_best_fid(verdicts, tmp_path):
    """The best FID of any run is 10: a final FID of exactly 20 is not failed, 21 is; 7 of 10
    classes fails (--fail-modes 8), 8 does not; a NaN evaluation or a recorded NaN loss fails."""
    finals = {0: (20.0, 10), 1: (21.0, 10), 2: (10.0, 7), 3: (10.0, 8)}
    for seed, (fid, classes) in finals.items():
        write_run(tmp_path, "none", seed, [(500, 30.0, 10), (END, fid, classes)])
    write_run(tmp_path, "none", 4, [(500, 10.0, 10), (END, float("nan"), 10)])
    write_run(tmp_path, "none", 5, [(500, 30.0, 10)], failed="stopped at step 700: loss_d is nan")
    for seed in range(6):
        write_run(tmp_path, "sine", seed, [(500, 30.0, 10), (END, 10.0, 10)])
    lines = verdicts.stability(verdicts.read_runs(tmp_path), END)
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ") and line[2].isdigit()}
    assert [rows[str(s)].split(" | ")[2] for s in range(6)] == ["no", "yes", "yes", "no", "yes", "yes"]
    assert any(line.startswith("failed: no lens 4/6") for line in lines)


def test_no_verdict_before_the_end(verdicts, tmp_path):
    """A run still short of the end, or a seed lacking an arm, gives no verdict at all."""
    study_a(tmp_path, {0, 1, 2, 3, 4, 5, 6}, set())
    write_run(tmp_path, "none", 8, [(500, 50.0, 10)])
    lines = verdicts.stability(verdicts.read_runs(tmp_path), END)
    assert not any(line.startswith("stability verdict") for line in lines)
    assert any("none-s8 at step 500" in line and "seed 8 lacks the sine arm" in line for line in lines)


def test_late_collapse(verdicts, tmp_path):
    """Lost modes late: the last evaluation more than 10 % below the run's own maximum from
    step 5000 on (exactly 10 % is not); a maximum before step 5000 does not count, one at
    step 5000 does."""
    write_run(tmp_path, "none", 0, [(4000, 500.0, 990), (5000, 400.0, 800), (6000, 300.0, 720)])     # 10 %: no
    write_run(tmp_path, "none", 1, [(4000, 500.0, 990), (5000, 400.0, 800), (6000, 300.0, 719)])     # 10.1 %: yes
    write_run(tmp_path, "none", 2, [(4000, 500.0, 990), (5000, 400.0, 700), (6000, 300.0, 700)])     # 0 % from 5000
    write_run(tmp_path, "sine", 0, [(5000, 400.0, 800), (6000, 300.0, 766)])
    write_run(tmp_path, "sine", 1, [(5000, 400.0, 800), (6000, float("nan"), float("nan"))])
    write_run(tmp_path, "sine", 2, [(5000, 400.0, 800), (6000, 300.0, 800)])
    text = "\n".join(verdicts.late_collapse(verdicts.read_runs(tmp_path), 6000))
    assert "none: 1 of 3 runs lost modes late" in text
    assert "sine: 0 of 2 runs lost modes late" in text and "1 not judged" in text
    assert "not judged: failed (NaN/Inf)" in text


def test_late_collapse_waits_for_the_end(verdicts, tmp_path):
    write_run(tmp_path, "none", 0, [(5000, 400.0, 800), (6000, 300.0, 100)])
    write_run(tmp_path, "sine", 0, [(5000, 400.0, 800)])
    text = "\n".join(verdicts.late_collapse(verdicts.read_runs(tmp_path), 6000))
    assert "lost modes late (" not in text and "no verdict yet" in text and "sine-s0 at step 5000" in text
