"""The one exception type the command line turns into a single error line."""
from contextlib import contextmanager


class UserError(Exception):
    """Bad input from the user: missing or corrupt files, impossible options.

    The CLI prints ``error: <message>`` and exits with status 2, without a
    traceback. Library code raises it wherever the cause is the caller's input
    rather than a bug.
    """


class WriteError(UserError, OSError):
    """A file could not be written (a full disk, a quota, permissions). One
    line naming the file; the file it replaces is untouched (atomic writes).
    Also an OSError, so code that treats a failed write as a warning (caches)
    still catches it."""

    def __init__(self, path, exc: OSError):
        self.path, self.cause = path, exc
        reason = exc.strerror or str(exc) or type(exc).__name__
        super().__init__(f"cannot write {path}: {reason}")
        self.errno = exc.errno

    def __str__(self) -> str:
        return self.args[0]


@contextmanager
def writing(path):
    """Turn an OSError raised inside into a :class:`WriteError` naming ``path``."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(path, exc) from None
