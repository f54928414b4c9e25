"""User-facing errors: each carries a one-line message that says what to do.

The CLI prints them as ``error: <message>`` and exits with code 2, never with a traceback.
"""

from __future__ import annotations


class EvobenchError(ValueError):
    """Bad input or an impossible request, explained in one line."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# Exceptions the CLI turns into one-line messages (exit code 2): EvobenchError and its kinds
# (SpecError, UnknownNameError ...) are ValueErrors. Other OS errors (EACCES included: the
# machine refused) are exit code 4.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)
