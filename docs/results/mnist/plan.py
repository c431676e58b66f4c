"""The lengths and cuts of RULES.md, decided from the pilot's runs alone (no verdict run exists when
this runs). Prints shell assignments for run.sh and, on stderr, the account of how they were chosen.

    python docs/results/mnist/plan.py runs/mnist/pilot
"""
import json
import math
import statistics
import sys
from pathlib import Path

from tempered_gan.studies.statistics import IMPROVING, trend

BUDGET = 24 * 3600 * 2          # job-seconds: 24 hours of two runs at a time, the pilot included
EVAL_SECONDS = 20               # one evaluation (4096 samples), measured while writing the rules: 15–20 s
EVAL_EVERY = 1000
PILOT_STEPS, PILOT_K = 30_000, 10_000
K_CANDIDATES = (2500, 5000, 10_000)
TUNING_STEPS, TUNING_SEEDS = 12_500, 3
C_SEEDS, D_SEEDS, D_CELLS = 6, 8, 3
C_LENGTHS = (15_000, 20_000, 25_000, 30_000)
D_LENGTHS = (10_000, 15_000, 20_000, 25_000, 30_000)
D_FLOOR = 10_000


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def settles(run: Path, lengths: tuple[int, ...]) -> tuple[int, bool]:
    """The first length at which the run's FID up to it is no longer *still improving* by the
    convergence rule (its last five evaluations); the longest, and False, when it never is."""
    evals = [(r["step"], float(r["fid"])) for r in records(run) if r.get("fid") is not None]
    for length in lengths:
        upto = [(s, f) for s, f in evals if s <= length]
        if upto and upto[-1][0] == length:
            state = trend([f for _, f in upto], steps=[s for s, _ in upto]).state
            print(f"  {run.parent.parent.name}/{run.name} at step {length}: {state}", file=sys.stderr)
            if state != IMPROVING:
                return length, True
    return lengths[-1], False


def speed(run: Path, first: int, last: int) -> float:
    """Median logged training speed (steps/s, two runs at a time) over the windows ending in (first, last]."""
    return statistics.median(r["steps_per_s"] for r in records(run)
                             if r.get("steps_per_s") and first < r["step"] <= last)


def run_cost(arm: str, steps: int, k: int, v: dict) -> float:
    """Job-seconds of one run: training at the phase's speed, plus its evaluations."""
    lensed = min(k, steps) if arm.startswith("sine") else 0
    after = v["r1"] if arm.endswith("r1") else v["none"]
    return lensed / v["lens"] + (steps - lensed) / after + steps // EVAL_EVERY * EVAL_SECONDS


def tuning_cost(steps: int, v: dict) -> float:
    return TUNING_SEEDS * (sum(run_cost("sine", steps, k, v) for k in K_CANDIDATES) + 3 * run_cost("r1", steps, 0, v))


def main(pilot: Path) -> None:
    color_none = pilot / "color" / "runs" / "none-s900"
    color_slow = next((pilot / "color-slow" / "runs").iterdir())
    grey_none = pilot / "grey" / "runs" / "none-s900"
    color = {"none": speed(color_none, 0, PILOT_STEPS), "lens": speed(color_slow, 0, PILOT_K),
             "r1": speed(color_slow, PILOT_K, PILOT_STEPS)}
    scale = speed(grey_none, 0, PILOT_STEPS) / color["none"]   # grey MNIST against Colour MNIST, plain
    grey = {arm: v * scale for arm, v in color.items()}
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    say(f"speeds (steps/s, two at a time): colour {color}; grey {grey}")

    say("study C's length, from the pilot's plain Colour MNIST run:")
    c_steps, c_settled = settles(color_none, C_LENGTHS)
    c_tuning = min(TUNING_STEPS, c_steps)
    pilot_cost = (run_cost("none", PILOT_STEPS, 0, color) + run_cost("sine+r1", PILOT_STEPS, PILOT_K, color)
                  + run_cost("none", PILOT_STEPS, 0, grey))
    c_cost = tuning_cost(c_tuning, color) + C_SEEDS * sum(
        run_cost(arm, c_steps, max(K_CANDIDATES), color) for arm in ("none", "sine", "r1", "sine+r1"))
    left = BUDGET - pilot_cost - c_cost

    def d_cost(steps: int) -> float:
        return tuning_cost(min(TUNING_STEPS, steps), grey) + D_CELLS * D_SEEDS * sum(
            run_cost(arm, steps, max(K_CANDIDATES), grey) for arm in ("none", "sine", "r1"))

    say("study D's length, from the pilot's plain MNIST run (GAN loss):")
    d_wanted, d_settled = settles(grey_none, D_LENGTHS)
    fitting = [s for s in range(D_FLOOR, d_wanted + 1, 1000) if d_cost(s) <= left]
    d_steps = max(fitting) if fitting else D_FLOOR
    lsgan = d_cost(d_steps) <= left - d_cost(d_steps)
    say(f"budget {BUDGET:.0f} job-s: pilot {pilot_cost:.0f}, study C {c_cost:.0f} at {c_steps} steps "
        f"(plain {'settled' if c_settled else 'still improving at the cap'}), study D per loss {d_cost(d_steps):.0f} "
        f"at {d_steps} steps (plain {'settled' if d_settled else 'still improving at the cap'} at {d_wanted}; "
        f"{'shortened to fit' if d_steps < d_wanted else 'as wanted'}{'; over the budget at the floor' if not fitting else ''}); "
        f"LSGAN half {'runs' if lsgan else 'cut'} (left after the GAN half: {left - d_cost(d_steps):.0f})")
    print(f"C_STEPS={c_steps} C_TUNING={c_tuning} D_STEPS={d_steps} D_TUNING={min(TUNING_STEPS, d_steps)} "
          f"LSGAN={int(lsgan)}")
    assert math.isfinite(c_cost)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
