"""The shared arithmetic of the figures, and the end-of-run summary agreeing with `raysched analyze` on one run."""

from __future__ import annotations

import collections
import math

import pandas as pd
import pytest

from raysched import analysis
from raysched.results.figures import cv, hit_rate, imbalance, per_s, tasks_per_s
from raysched.results.outcome import RunOutcome
from raysched.results.report import format_summary


def test_rates_need_time_to_pass() -> None:
    assert per_s(30.0, 2.0) == 15.0
    assert tasks_per_s(6, 3.0) == 2.0
    assert math.isnan(per_s(5.0, 0.0)) and math.isnan(tasks_per_s(5, -1.0)) and math.isnan(per_s(5.0, math.nan))


def test_balance_over_the_nodes_that_ran_something() -> None:
    assert imbalance([4, 1, 1]) == pytest.approx(2.0)  # 4 / mean 2
    assert imbalance([4, 1, 1, 0]) == pytest.approx(2.0)  # an idle node does not lower the mean
    assert cv([4, 1, 1]) == pytest.approx(math.sqrt(2) / 2)  # population std sqrt(2) / mean 2
    assert cv([3, 3]) == 0.0
    assert math.isnan(imbalance([])) and math.isnan(cv([0, 0]))


def test_the_same_counts_in_any_container_give_the_same_figure() -> None:
    counts = {"a": 5, "b": 2, "c": 2}
    as_series = pd.Series(counts)
    assert imbalance(counts.values()) == imbalance(as_series) == imbalance([5, 2, 2])
    assert cv(counts.values()) == cv(as_series) == pytest.approx(float(as_series.std(ddof=0) / as_series.mean()))


def test_hit_rate_skips_tasks_that_reported_nothing() -> None:
    assert hit_rate([1, 0, 1, 1]) == pytest.approx(75.0)
    assert hit_rate([1, None, math.nan, 0]) == pytest.approx(50.0)
    assert math.isnan(hit_rate([])) and math.isnan(hit_rate([None]))


def test_analysis_hit_rate_reads_the_ok_rows_cache_hit_column() -> None:
    ok = pd.DataFrame({"cache_hit": ["1", "0", "", "x", "1"]})  # text cells as a CSV gives them
    assert analysis.hit_rate(ok) == pytest.approx(200 / 3)  # 2 of 3 numbers; "" and "x" unreported
    assert math.isnan(analysis.hit_rate(pd.DataFrame({"other": [1]})))


def test_the_end_of_run_summary_and_analyze_agree_on_imbalance() -> None:
    per_node = collections.Counter({"a" * 56: 5, "b" * 56: 2, "c" * 56: 2})
    run = RunOutcome("r", ok=9, per_node=per_node, first_submitted=0.0, last_finished=3.0)
    printed = next(line for line in format_summary(run, "j", "p").splitlines() if "max/mean" in line)
    assert printed.split()[-1] == analysis.format_value(analysis.M_IMBALANCE, imbalance(per_node.values())) == "1.67"
