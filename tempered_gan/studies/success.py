"""The absolute success rule of a stability map (``sweep``): a run *trains* when it ends without a NaN or
Inf loss or FID, with a final FID of at most a bound and, where the data set has modes, at least so many
modes. The bound and the modes are fixed before the runs: given, or the data set's default here."""
from __future__ import annotations

from tempered_gan.errors import UserError
from tempered_gan.studies.compare_report import RunResult, is_failed

# The absolute success rule's defaults, (final FID at most, modes at least), per data set. On the 2-D
# mixtures FID is that of raw coordinates (docs/METRICS.md): N(0, I) scores 0.34 against the ring and one
# Gaussian over the grid about 6, a run on every mode below 0.1. Image FIDs depend on the features and
# the nets, so they have no default FID: --fail-fid must be given. Ten classes: at least 8 of them.
SUCCESS_DEFAULTS = {"mixture-ring8": (0.1, 8), "mixture-grid25": (1.0, 20), "mnist": (None, 8),
                    "fashion-mnist": (None, 8), "color-mnist": (None, None), "color-fashion-mnist": (None, None)}


def success_rule(dataset: str, fail_fid: float | None, fail_modes: int | None) -> tuple[float, int | None]:
    """The rule's (FID at most, modes at least): as given, else the data set's default."""
    default_fid, default_modes = SUCCESS_DEFAULTS.get(dataset, (None, None))
    fid = fail_fid if fail_fid is not None else default_fid
    if fid is None:
        raise UserError(f"sweep needs --fail-fid for {dataset}: image FIDs depend on the features and nets, so "
                        "there is no default (the 2-D mixtures have one); decide it before the runs")
    return fid, fail_modes if fail_modes is not None else default_modes


def trains(run: RunResult, fid: float, modes: int | None) -> bool:
    """The success rule: no NaN/Inf, final FID ≤ ``fid`` and (with ``modes``) at least that many modes."""
    return not is_failed(run, fid, modes)
