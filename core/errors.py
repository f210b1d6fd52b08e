"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input from the person at the keyboard: a missing file, a bad flag,
    a corrupt checkpoint. The message says what to do."""

    exit_code = 2
