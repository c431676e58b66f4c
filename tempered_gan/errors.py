"""The one exception type the command line turns into a single error line."""


class UserError(Exception):
    """Bad input from the user: missing or corrupt files, impossible options.

    The CLI prints ``error: <message>`` and exits with status 2, without a
    traceback. Library code raises it wherever the cause is the caller's input
    rather than a bug.
    """
