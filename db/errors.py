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


class RefusedFiles(RefusedFile):
    """Several files refused by one import; ``refused`` lists each, ``file`` is the first."""

    def __init__(self, refused: list[RefusedFile]):
        self.refused = list(refused)
        first = self.refused[0]
        StoreError.__init__(self, f"{len(self.refused)} files refused:\n" + "\n".join(f"- {r}" for r in self.refused))
        self.file, self.problem = first.file, first.problem


def refuse_all(refused: list[RefusedFile]) -> None:
    """Raise the one refused file as it is, several as :class:`RefusedFiles`; nothing when empty."""
    if len(refused) == 1:
        raise refused[0]
    if refused:
        raise RefusedFiles(refused)


class StoreUnavailable(StoreError):
    """The database could not be reached, read or written (locked, read-only, down)."""
