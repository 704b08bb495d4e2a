"""Errors that name who caused them. Users get one line and an exit code, never a traceback."""


class UserError(Exception):
    """Bad input from the user: bad targets, ports, options or files. Exit code 1."""

    exit_code = 1


class UsageError(UserError):
    """Command-line syntax the parser rejects (unknown option, missing value). Exit code 2."""

    exit_code = 2
