"""Errors a user can fix, kept apart from bugs.

A ``PoiseError`` names what is wrong and how to fix it; the CLI prints it without a
traceback. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class PoiseError(Exception):
    """A problem with the user's input or setup, with the fix spelled out."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")
        self.problem = problem
        self.fix = fix


class DataError(PoiseError):
    """The table or the target cannot be used as given."""


class ModelNotFoundError(PoiseError):
    """A model name, alias or version that the registry does not have."""
