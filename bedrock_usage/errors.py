"""Errors a user can act on, and the exit codes of `bedrock-usage` (docs/operating.md lists them).

Everything that decides an outcome raises `UserError` with its exit code; the CLI only
prints the message and exits with the code.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    FAILED = 1
    USAGE = 2  # bad input: a name, id, region, date, or a setting
    VERIFICATION_FAILED = 3
    NOT_FOUND = 4
    CONFLICT = 5
    PARTIAL_SYNC = 6  # one or more regions could not be read
    WAREHOUSE_BUSY = 7  # the DuckDB file or its write slot stayed busy
    INTERRUPTED = 130


class UserError(Exception):
    """A mistake or a failure the user can act on: the message says what to do."""

    def __init__(self, message: str, exit_code: int = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
