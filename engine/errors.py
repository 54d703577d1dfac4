"""Error types. Only `cli/main.py` catches `DistillError`; everything else is a bug and shows a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DistillError(Exception):
    """Base of every error a user can fix; the message names the place, what was found and the fix."""

    exit_code = 2


class InputError(DistillError):
    """A source file is missing, unreadable or in a form we cannot map."""


class ConfigError(DistillError):
    """A stage config, pipeline file or command option is invalid."""


class SchemaError(DistillError):
    """A dataset or file does not have the columns or types the engine needs."""


class StoreError(DistillError):
    """A dataset directory is missing, incomplete or inconsistent."""


class CheckFailed(DistillError):
    """A check the user asked for (`distill verify`) found a problem."""

    exit_code = 1


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return '; did you mean X?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
