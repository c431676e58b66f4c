"""One owner per run folder: an exclusive lock the operating system keeps.

A process that trains into a folder (``train``, ``train --resume``, one run of
``compare``) or runs a comparison in it holds ``FOLDER/.tempered-gan.lock``
locked with ``flock(2)`` from before it writes anything there until it ends.
The lock belongs to the open file, not to a name or a pid in a file: when the
process dies, however it dies, the kernel drops the lock, so a lock left by a
dead process never blocks anyone. The file's content (host, pid, since when)
is only there to name the holder in the refusal.

Why not the ``filelock`` package: its Unix lock opens the file with
``O_TRUNC``, so a refused second process would erase the holder's name from
it; ``fcntl.flock`` is all it uses underneath.

Shared (``LOCK_SH``) holders coexist with each other but not with an exclusive
holder: the shards of one comparison share its folder, a whole comparison
(or ``--overwrite``) excludes them.

Network file systems: ``flock`` is honoured on local file systems; on NFS Linux
maps it to NFS byte-range locks, which work only where the lock service runs
(not with the ``nolock`` mount option), and some cluster file systems ignore it
unless mounted with a flock option (e.g. Lustre's ``flock``). There two
processes may both believe they own a folder (docs/SCALE.md, "One process per folder").

The locks of this process are kept in ``_HELD`` until :func:`release_all`
(the CLI calls it when a command ends) or the process ends.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import os
import socket
from pathlib import Path

from tempered_gan.errors import UserError

LOCK_NAME = ".tempered-gan.lock"

_HELD: dict[Path, "FolderLock"] = {}


class FolderLock:
    def __init__(self, folder: Path, fd: int, shared: bool):
        self.folder, self.fd, self.shared = folder, fd, shared
        self.count = 1                   # acquires in this process not yet released

    def release(self) -> None:
        self.count -= 1
        if self.count > 0:
            return
        if self.fd is not None:
            os.close(self.fd)            # closing the last descriptor of the open file drops the lock
            self.fd = None
        if _HELD.get(self.folder) is self:
            del _HELD[self.folder]

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder_text(fd: int) -> str:
    try:
        raw = os.pread(fd, 512, 0).decode("utf-8", errors="replace").strip()
    except OSError:
        raw = ""
    return raw.splitlines()[0] if raw else "another process (it has not written its name yet)"


def _refusal(folder: Path, who: str, what: str) -> UserError:
    return UserError(f"{folder} is in use by {who}: one process per {what} folder; "
                     "wait for it to end or stop it (a dead process's lock is released by the system)")


def held(folder: Path) -> bool:
    """Whether this process holds the lock of ``folder``."""
    return Path(folder).resolve() in _HELD


def holder(folder: Path) -> str | None:
    """Who holds ``folder``'s lock ("pid … on host since …"), or None when no other
    process does; a probe that writes nothing and creates nothing."""
    folder = Path(folder)
    if held(folder):
        return None
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None                      # no lock file (or no folder): nobody can hold it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return _holder_text(fd)
        raise
    finally:
        os.close(fd)                     # a probe: nothing kept
    return None


def check_free(folder: Path, what: str = "run") -> None:
    """Refuse (one :class:`UserError` naming the holder) when another process
    holds ``folder``'s lock; writes nothing, creates nothing."""
    who = holder(folder)
    if who is not None:
        raise _refusal(Path(folder), who, what)


def acquire(folder: Path, what: str = "run", *, shared: bool = False) -> FolderLock:
    """Lock ``folder`` (created if missing) for this process, or raise one
    :class:`UserError` naming the holder. Taking it again in the same process
    returns the lock already held (an exclusive one is not weakened)."""
    folder = Path(folder)
    key = folder.resolve()
    if key in _HELD:
        _HELD[key].count += 1
        return _HELD[key]
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} exists and is not a folder")
    check_free(folder, what)             # refuse before creating anything
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)   # never O_TRUNC: the holder's name stays
    except OSError as exc:
        raise UserError(f"cannot create the lock file {folder / LOCK_NAME}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        try:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _refusal(folder, _holder_text(fd), what) from None
            raise UserError(f"cannot lock {folder / LOCK_NAME}: {exc.strerror or exc} (a file system without "
                            "flock support? see docs/SCALE.md, 'One process per folder')") from None
        finally:
            os.close(fd)
    since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    text = f"pid {os.getpid()} on {socket.gethostname()} since {since}" + (" (shared)" if shared else "") + "\n"
    try:                                 # shared holders: the last one to start is named
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError:
        pass                             # the lock holds without the name (e.g. a full disk)
    lock = FolderLock(key, fd, shared)
    _HELD[key] = lock
    return lock


def entries(folder: Path) -> list[Path]:
    """What ``folder`` holds besides its lock file."""
    return [p for p in Path(folder).iterdir() if p.name != LOCK_NAME]


def clear(folder: Path) -> None:
    """Remove what ``folder`` holds, keeping its lock file: removing a held lock
    file would let a second process lock a new file of the same name."""
    import shutil

    for p in entries(folder):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


@contextlib.contextmanager
def waiting(path: Path):
    """Hold the lock file ``path`` exclusively for a short critical section,
    waiting for it if another process has it (e.g. shards writing one manifest)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def release_all() -> None:
    for lock in list(_HELD.values()):
        lock.count = 1
        lock.release()
