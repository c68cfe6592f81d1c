"""The results schema: its columns, statuses, metrics and demand cells."""

from __future__ import annotations

import pytest

from raysched.results.schema import (
    BASE_COLUMNS,
    NUMERIC_COLUMNS,
    TEXT_COLUMNS,
    Status,
    format_demand,
    numeric_metrics,
    parse_demand,
)

DESIGN_COLUMNS = [
    "run_id",
    "job",
    "policy",
    "task_id",
    "key",
    "attempt",
    "status",
    "error",
    "node_chosen",
    "node_ran",
    "submitted_at",
    "started_at",
    "finished_at",
    "wait_s",
    "run_s",
    "demand",
    "spill",
    "brain_wait_s",
    "replica",
    "via",
    "executor",
    "latency_s",  # issue 28: appended at the end, never before an existing column
]


def test_schema_matches_the_documented_columns() -> None:
    assert list(BASE_COLUMNS) == DESIGN_COLUMNS
    assert [s.value for s in Status] == ["ok", "failed", "retried", "infeasible", "cancelled"]


def test_every_column_is_either_a_number_or_text_as_row_types_it() -> None:
    assert set(NUMERIC_COLUMNS) | set(TEXT_COLUMNS) == set(BASE_COLUMNS)
    assert not set(NUMERIC_COLUMNS) & set(TEXT_COLUMNS)
    assert set(NUMERIC_COLUMNS) == {
        "task_id",
        "attempt",
        "submitted_at",
        "started_at",
        "finished_at",
        "wait_s",
        "run_s",
        "brain_wait_s",
        "latency_s",
    }


def test_numeric_metrics_keep_numbers_only() -> None:
    assert numeric_metrics({"items": 3, "bytes": 2.5, "name": "x", "flag": True, "nan": float("nan")}) == {
        "items": 3,
        "bytes": 2.5,
    }
    assert numeric_metrics(None) == {} and numeric_metrics([1, 2]) == {}
    assert numeric_metrics({"status": 1}) == {"metric_status": 1}  # never clobbers the schema


def test_demand_round_trips_through_its_text_form() -> None:
    assert format_demand({"ssd": 1.0, "CPU": 1.0, "GPU": 0.0}) == "CPU=1;ssd=1"  # sorted, zeros left out
    assert format_demand({"memory": 2e9, "CPU": 0.5}) == "CPU=0.5;memory=2e+09"
    assert parse_demand("CPU=0.5;memory=2e+09") == {"CPU": 0.5, "memory": 2e9}
    assert parse_demand("") == {}
    with pytest.raises(ValueError, match="NAME=AMOUNT"):
        parse_demand("CPU")
