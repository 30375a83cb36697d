"""Errors in the suite's own setup: one clear line, never a traceback wall."""


class SetupError(Exception):
    """The suite cannot run as configured.

    The message is a single line that names the problem and the fix; it never
    contains a password.
    """
