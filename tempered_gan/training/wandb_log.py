"""A run's log mirrored to Weights & Biases (``--wandb PROJECT``; ``pip install 'tempered-gan[wandb]'``):
the same scalars, evaluations and sample grids as TensorBoard, and the configuration. Process 0 alone
logs. The W&B run's id is kept in the run folder (``wandb-run.json``), so a resumed run continues its W&B
run. ``WANDB_MODE=offline`` (or ``disabled``) is W&B's own switch and is respected: offline, the run is
written under ``RUN_DIR/wandb/`` for ``wandb sync`` later."""
from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

from tempered_gan.errors import UserError
from tempered_gan.util.atomic_files import atomic_write_bytes

RUN_ID_FILE = "wandb-run.json"
INSTALL = "--wandb needs the wandb package: pip install 'tempered-gan[wandb]'"


def check_wandb_installed() -> None:
    """One error line, before anything is written, when --wandb is given without the package."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise UserError(INSTALL) from None


class WandbRun:
    """The W&B run of one run folder: created on the first start, continued on resume."""

    def __init__(self, run_dir: Path, project: str, config: dict):
        import wandb

        id_file = Path(run_dir) / RUN_ID_FILE
        saved = json.loads(id_file.read_text()) if id_file.is_file() else {}
        run_id = saved.get("id") or uuid.uuid4().hex[:12]      # W&B ids: lower-case letters and digits
        self.run = wandb.init(project=project, id=run_id, resume="allow", dir=str(run_dir), config=config,
                              name=Path(run_dir).name, reinit="create_new")
        if not saved:
            atomic_write_bytes(id_file, json.dumps({"id": run_id, "project": project}).encode())

    def scalars(self, record: dict, skip: set) -> None:
        values = {k: v for k, v in record.items() if k != "step" and k not in skip and isinstance(v, (int, float))
                  and not isinstance(v, bool) and math.isfinite(v)}
        if values:
            self.run.log(values, step=record["step"])

    def image(self, key: str, path: Path, step: int) -> None:
        """The picture in ``path`` (a sample grid as the run folder holds it)."""
        import wandb

        self.run.log({key: wandb.Image(str(path))}, step=step)

    def close(self) -> None:
        self.run.finish()
