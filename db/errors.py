"""The error the store raises for refused input or a request it cannot honour."""

from __future__ import annotations

from segcore.errors import SegcoreError


class StoreError(SegcoreError):
    """Refused input or an impossible request; the message names the file or record."""


class NotFound(StoreError):
    """A dataset, frame, revision, run or evaluation id that does not exist."""


class RefusedFile(StoreError):
    """A file refused on input; ``file`` is its name as the user knows it."""

    def __init__(self, file: str, problem: str):
        self.file = file
        self.problem = problem
        super().__init__(f"{file}: {problem}")


class StoreUnavailable(StoreError):
    """The database could not be reached, read or written (locked, read-only, down)."""
