"""Names an earlier release wrote, and what they are called now: the one table of renames, applied
where each kind of file is read (run configurations and grid manifests, checkpoints, metrics logs)
and where flags are parsed. What was renamed still loads, with a note on stderr once per process."""
from __future__ import annotations

import sys

# The lens's end had four words (exit, leave, retire, drop); it is "exit" everywhere now.
CONFIG_KEYS = {"retire_tolerance": "lens_exit_tolerance", "retire_patience": "lens_exit_patience"}
CHECKPOINT_KEYS = {"lens_retired_at": "lens_exited_at"}
LOG_KEYS = {"lens_retired": "lens_exited"}

_noted: set[str] = set()


def note_once(message: str) -> None:
    """Print ``tempered-gan: note: message`` on stderr, once per process."""
    if message not in _noted:
        _noted.add(message)
        print(f"tempered-gan: note: {message}", file=sys.stderr)


def flag(key: str) -> str:
    """The command-line flag of configuration key ``key``."""
    return "--" + key.replace("_", "-")


def renamed(values: dict, table: dict[str, str], what: str | None = None) -> dict:
    """``values`` with the old keys of ``table`` under their new names (a new key given as well wins);
    with ``what``, a note naming each old key found."""
    old = [k for k in table if k in values]
    if not old:
        return values
    out = {k: v for k, v in values.items() if k not in table}
    for key in old:
        out.setdefault(table[key], values[key])
        if what:
            note_once(f"{what} written by an earlier version: {key} is read as {table[key]}")
    return out
