"""The sidecar <name>.json beside each results CSV, and how `raysched analyze` uses it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from raysched import analysis
from raysched.cli.analyze import analyze_command
from raysched.results import sidecar
from raysched.results.schema import BASE_COLUMNS

N1 = "d4" * 28


def write_run(path: Path, run_id: str, policy: str, rows: int = 3, append: bool = False) -> None:
    mode = "a" if append else "w"
    with path.open(mode, newline="") as fh:
        w = csv.writer(fh)
        if not append:
            w.writerow(BASE_COLUMNS[: BASE_COLUMNS.index("replica")])  # a CSV written before services
        for i in range(rows):
            w.writerow(
                [run_id, "job.py", policy, i, f"k{i}", 1, "ok", "", N1, N1, 0.0, i, i + 1.0, i, 1.0, "CPU=1", "", 0.0]
            )


def record(path: Path, run_id: str, **options: object) -> None:
    sidecar.record_run(
        path,
        {
            "run_id": run_id,
            "job": "job.py",
            "policy": "hash",
            "options": {"load_factor": 1.25, "vnodes": 100, "seed": None, **options},
        },
    )


def test_runs_are_recorded_updated_and_appended(tmp_path: Path) -> None:
    csv_path = tmp_path / "out.csv"
    record(csv_path, "r1")
    sidecar.update_run(csv_path, "r1", {"ended_at": 5.0, "outcome": {"ok": 3}})
    record(csv_path, "r2", load_factor=None)  # a --resume appends its run
    runs = sidecar.read_runs(csv_path)
    assert list(runs) == ["r1", "r2"]
    assert runs["r1"]["ended_at"] == 5.0 and runs["r1"]["outcome"] == {"ok": 3}
    assert runs["r2"]["options"]["load_factor"] is None
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["format"] == 1 and [r["run_id"] for r in data["runs"]] == ["r1", "r2"]


def test_a_missing_or_damaged_sidecar_never_stops_analyze(tmp_path: Path) -> None:
    csv_path = tmp_path / "out.csv"
    write_run(csv_path, "r1", "hash")
    assert sidecar.read_runs(csv_path) == {}  # none: nothing to say
    (tmp_path / "out.json").write_text("{not json")
    warnings: list[str] = []
    assert sidecar.read_runs(csv_path, on_warning=warnings.append) == {}
    assert "cannot read the run records" in warnings[0]
    result = CliRunner().invoke(analyze_command, [str(csv_path)])
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.stderr and "out.json" in result.stderr
    assert "hash" in result.stdout


def test_runs_of_one_policy_are_labelled_by_the_settings_that_differ(tmp_path: Path) -> None:
    csv_path = tmp_path / "both.csv"
    write_run(csv_path, "r1", "hash")
    write_run(csv_path, "r2", "hash", append=True)
    record(csv_path, "r1")
    record(csv_path, "r2", load_factor=None)
    labels = analysis.run_labels(analysis.load([csv_path]))
    assert labels == {"r1": "hash c=1.25", "r2": "hash c=off"}
    result = CliRunner().invoke(analyze_command, [str(csv_path), "--json"])
    assert [r["label"] for r in json.loads(result.stdout)["runs"]] == ["hash c=1.25", "hash c=off"]


def test_without_records_equal_labels_fall_back_to_short_run_ids(tmp_path: Path) -> None:
    csv_path = tmp_path / "both.csv"
    write_run(csv_path, "20261126T1-aaaaaa", "hash")
    write_run(csv_path, "20261126T1-bbbbbb", "hash", append=True)
    labels = analysis.run_labels(analysis.load([csv_path]))
    assert labels == {"20261126T1-aaaaaa": "hash #aaaaaa", "20261126T1-bbbbbb": "hash #bbbbbb"}


def test_spills_and_brain_waits_are_figures_of_the_run(tmp_path: Path) -> None:
    csv_path = tmp_path / "spills.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(BASE_COLUMNS[: BASE_COLUMNS.index("replica")])  # a CSV written before services
        for i, (spill, waited) in enumerate([("", 0.0), ("", 0.1), ("bound", 0.2), ("wait", 0.5)]):
            w.writerow(
                ["r1", "job.py", "hash", i, "k", 1, "ok", "", N1, N1, 0.0, i, i + 1.0, i, 1.0, "CPU=1", spill, waited]
            )
    summary = analysis.summarize(analysis.load([csv_path]))["hash"]
    assert summary[analysis.M_SPILLED] == 50.0  # 2 of 4 ok tasks placed off their key's owner
    assert (summary[analysis.M_SPILLED_BOUND], summary[analysis.M_SPILLED_WAIT]) == (1, 1)
    # brain waits 0, 0.1, 0.2, 0.5: the median is (0.1 + 0.2) / 2
    assert abs(summary["brain_wait_s p50 (s)"] - 0.15) < 1e-12
