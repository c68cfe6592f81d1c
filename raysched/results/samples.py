"""Timings kept for exact quantiles in the end-of-run summary, in bounded memory.

The summary's p50/p95 must be the numbers `raysched analyze` prints for the same rows, so the values are kept
as they are (8 bytes each), not sketched. Past `SAMPLES_KEPT` values the series is given up and the summary
leaves its quantiles to `raysched analyze`, as it does key affinity past `outcome.KEYS_TRACKED` keys.
"""

from __future__ import annotations

from array import array

import numpy as np

from raysched.results.figures import quantile

__all__ = ["SAMPLES_KEPT", "Samples"]

SAMPLES_KEPT = 1_000_000  # 8 MB of one timing at most


class Samples:
    """One timing (seconds) of the ok attempts of a run, for its quantiles."""

    def __init__(self, limit: int | None = None) -> None:
        self._limit = SAMPLES_KEPT if limit is None else limit
        self._values = array("d")
        self.given_up = False  # more than the limit: the quantiles are left to `raysched analyze`
        self.count = 0  # values added, kept or not

    def add(self, seconds: float | None) -> None:
        """One attempt's value; None (not measured) is left out."""
        if seconds is None:
            return
        self.count += 1
        if self.given_up:
            return
        if len(self._values) >= self._limit:
            self.given_up = True
            self._values = array("d")
            return
        self._values.append(seconds)

    def quantile(self, q: float) -> float | None:
        """The q-quantile (`figures.quantile`: linear, as pandas); None with no values or once given up."""
        if self.given_up or not self._values:
            return None
        return quantile(np.frombuffer(self._values), q)
