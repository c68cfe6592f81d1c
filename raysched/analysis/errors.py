"""What goes wrong with analysis input: an error shown as one line, or a warning about a skipped part."""

from __future__ import annotations

__all__ = ["AnalysisInputError", "AnalysisWarning"]


class AnalysisInputError(ValueError):
    """Input that cannot be analysed; the message is one line: what is wrong, what to do."""


class AnalysisWarning(UserWarning):
    """Input that was analysed anyway, minus a damaged part (e.g. a last line cut by a crash)."""
