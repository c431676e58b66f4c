"""How partial collapse came and went during each run of a Colour MNIST comparison: a description to read
beside the verdict, which is taken at the last evaluation only (RULES.md). For each arm and seed, the
evaluations at which the run was partly collapsed, how often the flag changed, and the channels like the
data at the end; then per arm the runs partly collapsed at any evaluation from half-way on. Markdown on
stdout.

    python docs/results/mnist/collapse_history.py runs/mnist/color/verdict > docs/results/mnist/color/verdict/collapse-history.md
"""
import sys
from pathlib import Path

from typical_runs import runs_by_arm  # beside this script


def history(evals: list[dict]) -> dict:
    """The partial-collapse flag over one run's evaluations (those that have it)."""
    flags = [(e["step"], e["partial_collapse"]) for e in evals if e.get("partial_collapse") in (0, 1)]
    if not flags:
        return {}
    last_step = flags[-1][0]
    return {"evaluations": len(flags), "collapsed": sum(f for _, f in flags),
            "changes": sum(a != b for (_, a), (_, b) in zip(flags, flags[1:])),
            "late": any(f for s, f in flags if s >= last_step / 2), "final": flags[-1][1],
            "like_data": evals[-1].get("channels_like_data"), "steps": [s for s, f in flags if f]}


def main(folder: Path) -> None:
    rows, per_arm = [], {}
    for arm, results in runs_by_arm(folder).items():
        for run in results:
            h = history(run.evals)
            if not h:
                continue
            per_arm.setdefault(arm, []).append(h)
            span = f"{h['steps'][0]}–{h['steps'][-1]}" if h["steps"] else "never"
            rows.append(f"| {arm} | {run.seed} | {h['collapsed']}/{h['evaluations']} | {span} | {h['changes']} | "
                        f"{'yes' if h['final'] else 'no'} | {h['like_data']} |")
    print(f"# Partial collapse during training: {folder.name}\n")
    print("Descriptive only: the verdict reads the last evaluation (RULES.md). A run is partly collapsed at an "
          "evaluation when at least one colour channel is like the grey data and at least one is not.\n")
    print("| arm | seed | evaluations partly collapsed | first–last step partly collapsed | flag changes | "
          "at the end | channels like the data at the end |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\n| arm | runs partly collapsed at the end | at any evaluation from half-way on | mean flag changes |")
    print("|---|---|---|---|")
    for arm, hs in per_arm.items():
        print(f"| {arm} | {sum(h['final'] for h in hs)}/{len(hs)} | {sum(h['late'] for h in hs)}/{len(hs)} | "
              f"{sum(h['changes'] for h in hs) / len(hs):.1f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
