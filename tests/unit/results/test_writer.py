"""The streaming results CSV writer and reading a run back for --resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from conftest import wait_for

from raysched.results.schema import BASE_COLUMNS, Row, Status
from raysched.results.writer import ResultsWriter, ResumeError, completed_task_ids


def row(task_id: int, status: Status = Status.OK, job: str = "j.py", policy: str = "hash") -> Row:
    return Row(
        run_id="r1",
        job=job,
        policy=policy,
        task_id=task_id,
        key=f"k{task_id}",
        attempt=1,
        status=status.value,
        node_chosen="a" * 56,
        node_ran="a" * 56,
        submitted_at=1.0,
        started_at=1.5,
        finished_at=2.0,
        wait_s=0.5,
        run_s=0.5,
    )


def test_writer_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("precious\n")
    with pytest.raises(FileExistsError):
        ResultsWriter(path)
    assert path.read_text() == "precious\n"


def test_new_metric_column_widens_the_file_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    with ResultsWriter(path, flush_every_s=0) as writer:
        writer.write(row(0), {"items": 1})
        writer.write(row(1), {"items": 2, "bytes": 10})
        writer.write(row(2, Status.FAILED), None)
    df = pd.read_csv(path)
    assert list(df.columns) == [*BASE_COLUMNS, "items", "bytes"]
    assert df["items"].tolist()[:2] == [1, 2] and df["bytes"].tolist()[1] == 10
    assert df["status"].tolist() == ["ok", "ok", "failed"]


def test_rows_reach_disk_by_the_flush_interval_without_another_row(tmp_path: Path) -> None:
    """Regression: rows were flushed only when another row arrived, so the rows written before a
    long-running task stayed in the buffer. A timer flushes them."""
    path = tmp_path / "out.csv"
    writer = ResultsWriter(path, flush_every_s=0.2)
    try:
        writer.write(row(0), {"items": 1})
        writer.write(row(1), {"items": 1})
        assert wait_for(lambda: path.read_text().count("\n") == 3, timeout=30), path.read_text()
        assert len(pd.read_csv(path)) == 2  # readable while the writer is still open, no new row needed
    finally:
        writer.close()


def test_append_after_a_cut_line_starts_a_fresh_line(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    with ResultsWriter(path, flush_every_s=0) as writer:
        writer.write(row(0))
        writer.write(row(1))
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # a crash cut the last line
    assert completed_task_ids(path, "j.py", "hash") == {0}
    with ResultsWriter(path, append=True, flush_every_s=0) as writer:
        writer.write(row(1))
    records = list(csv.DictReader(path.open()))
    assert [r["task_id"] for r in records if r["status"] == "ok" and r["run_s"]] == ["0", "1"]


def test_resume_checks_job_and_policy(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    with ResultsWriter(path, flush_every_s=0) as writer:
        writer.write(row(0))
        writer.write(row(1, Status.FAILED))
    assert completed_task_ids(path, "j.py", "hash") == {0}
    with pytest.raises(ResumeError, match=r"under policy 'hash', not 'j\.py' under 'random'"):
        completed_task_ids(path, "j.py", "random")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ResumeError, match="missing columns: job, policy, task_id, status"):
        completed_task_ids(other, "j.py", "hash")
    with pytest.raises(ResumeError, match="not found"):
        completed_task_ids(tmp_path / "none.csv", "j.py", "hash")
