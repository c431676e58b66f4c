"""``tempered-gan eval RUN_DIR``: FID (and coverage, and the per-channel scores of a colour set) of a
run's checkpoint, printed as one JSON object."""
from __future__ import annotations

import json
from pathlib import Path

from tempered_gan.training.snapshots import evaluate_run, load_run

OPTIONS = ("fid_samples", "fid_features", "inception_weights", "dinov2_weights")


def add_parser(commands) -> None:
    parser = commands.add_parser("eval", help="FID (and coverage) of a run's checkpoint, printed as one JSON object")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--fid-samples", type=int, help="samples per FID (default: the run's)")
    evaluation.add_argument("--fid-features", help="auto, classifier, inception (the paper's), dinov2 or "
                                                   "points (default: the run's)")
    evaluation.add_argument("--inception-weights", help="path of pt_inception-2015-12-05-6726825d.pth "
                                                        "(default: the run's)")
    evaluation.add_argument("--dinov2-weights", help="path of dinov2_vits14_pretrain.pth (default: the run's)")
    add_device(parser)
    parser.set_defaults(run=run_command)


def add_device(parser) -> None:
    """``--device`` of the commands that read a saved run."""
    parser.add_argument_group("speed and device").add_argument(
        "--device", default=None, help="auto, cpu, cuda or cuda:N (default: the run's)")


def run_command(args) -> int:
    options = {k: getattr(args, k) for k in OPTIONS if getattr(args, k)}
    trainer = load_run(Path(args.run_dir), device=args.device, **options)
    print(json.dumps({"step": trainer.step_count, **evaluate_run(trainer)}))
    return 0
