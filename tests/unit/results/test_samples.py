"""Samples: the timings the end-of-run summary keeps for exact quantiles, in bounded memory."""

from __future__ import annotations

import pandas as pd
import pytest

from raysched.results.samples import Samples


def test_quantiles_are_pandas_linear_interpolation() -> None:
    values = [0.5, 0.1, 0.4, 0.2, 0.3, 2.0]
    samples = Samples()
    for v in values:
        samples.add(v)
    for q in (0.5, 0.95, 0.99):
        assert samples.quantile(q) == pd.Series(values).quantile(q)  # what `raysched analyze` prints, bit for bit
    assert samples.quantile(0.5) == pytest.approx(0.35)  # between 0.3 and 0.4


def test_no_values_no_quantile_and_none_is_left_out() -> None:
    samples = Samples()
    samples.add(None)
    assert samples.quantile(0.5) is None and samples.count == 0


def test_past_the_limit_the_quantiles_are_given_up_not_guessed() -> None:
    samples = Samples(limit=3)
    for v in (1.0, 2.0, 3.0):
        samples.add(v)
    assert samples.quantile(0.5) == 2.0 and not samples.given_up
    samples.add(4.0)
    assert samples.given_up and samples.quantile(0.5) is None
    samples.add(5.0)
    assert samples.count == 5 and samples.quantile(0.5) is None  # stays given up, still counted
