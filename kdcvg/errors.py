"""One family of errors for everything KD-CVG refuses on purpose.

A `KdcvgError` says, in one line a user can act on, why something was refused or could not be
done: the CLI prints it and exits with code 2, the app shows it under the field or page. Any other
exception is a bug: the CLI shows its traceback and exits with code 1. Each layer raises these
(or its own subclasses of them); none catches a bare `KeyError` or `ValueError` to mean "bad input".
"""

from __future__ import annotations


class KdcvgError(Exception):
    """Something was refused or could not be done; the message says what and how to fix it."""


class BadInputError(KdcvgError, ValueError):
    """A value, file, query or request given to us is not acceptable (nothing was written)."""


class NotFoundError(KdcvgError, KeyError):
    """A record, file or model that the caller named does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else "not found"


class ConflictError(KdcvgError):
    """The write was based on a stale version, an id is taken, or another writer holds the store."""


class UnavailableError(KdcvgError):
    """A backend, server or model we need cannot be reached or loaded right now."""


class MissingFileError(NotFoundError, FileNotFoundError):
    """A file or folder we need (a checkpoint, a model, a video) is absent."""


class TargetExistsError(BadInputError, FileExistsError):
    """We were asked to write where something already is, and will not replace it."""
