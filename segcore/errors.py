"""The one error type segcore raises for bad input."""

from __future__ import annotations

import os


class SegcoreError(Exception):
    """Base class for every error segcore raises on purpose."""


class InputFileError(SegcoreError):
    """A file could not be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
