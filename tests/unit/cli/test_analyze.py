"""`raysched analyze` through click's CliRunner: output, --json, --csv, --plot, bad input.

Fixture runs (figures worked out in comments):

  hash   (run h1): N1 runs tasks 0,1,2 (run_s 1, 2, 3), N2 runs task 3 (run_s 6);
         all submitted at 0, finished at 1, 3, 6, 10 (started at 0, 1, 3, 4).
         makespan = 10 - 0 = 10 s; throughput = 4 / 10 = 0.4 tasks/s;
         per node 3 and 1: mean 2, imbalance 3/2 = 1.5, CV = pop. std 1 / 2 = 0.5.
  random (run r1): N1 and N2 one task each, submitted at 0, finished at 2 and 4.
         makespan 4 s; throughput 0.5 tasks/s; imbalance 1.0, CV 0.0.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from raysched.analysis import format_value
from raysched.cli.analyze import analyze_command
from raysched.results.schema import REQUIRED_COLUMNS as COLUMNS  # the first format: still read

N1, N2 = "d4" * 28, "e5" * 28


def _row(
    run_id: str, policy: str, task_id: int, node: str, started: float, finished: float, status: str = "ok"
) -> list[object]:
    return [
        run_id,
        "cache_affinity.py",
        policy,
        task_id,
        f"user-{task_id}",
        1,
        status,
        "" if status == "ok" else "E: x",
        node,
        node,
        0.0,
        started,
        finished,
        started,
        finished - started,
    ]


def _write(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return path


@pytest.fixture
def csvs(tmp_path: Path) -> list[str]:
    hash_rows = [
        _row("h1", "hash", 0, N1, 0, 1),
        _row("h1", "hash", 1, N1, 1, 3),
        _row("h1", "hash", 2, N1, 3, 6),
        _row("h1", "hash", 3, N2, 4, 10),
    ]
    random_rows = [_row("r1", "random", 0, N1, 0, 2), _row("r1", "random", 1, N2, 0, 4)]
    return [str(_write(tmp_path / "hash.csv", hash_rows)), str(_write(tmp_path / "random.csv", random_rows))]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(analyze_command, list(args))


def _table(stdout: str) -> dict[str, list[str]]:
    """metric -> cells, read from the printed table (metric names end where two spaces start)."""
    out: dict[str, list[str]] = {}
    for line in stdout.split("\n\n" + "Tasks per node")[0].splitlines():
        if "  " in line and not line.startswith("-"):
            name, _, cells = line.partition("  ")
            out[name.strip()] = cells.split()
    return out


def test_prints_two_runs_side_by_side(csvs: list[str]) -> None:
    result = invoke(*csvs)
    assert result.exit_code == 0, result.output
    table = _table(result.stdout)
    assert table["metric"] == ["hash", "random"]
    assert table["makespan (s)"] == ["10.00", "4.00"]
    assert table["throughput (tasks/s)"] == ["0.400", "0.500"]
    assert table["imbalance (max/mean)"] == ["1.50", "1.00"]
    assert table["CV tasks/node (pop. std/mean)"] == ["0.500", "0"]
    assert "Tasks per node" in result.stdout and N1[:8] in result.stdout
    assert result.stderr == ""


def test_json_matches_the_table(csvs: list[str]) -> None:
    table = _table(invoke(*csvs).stdout)
    result = invoke(*csvs, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [r["label"] for r in data["runs"]] == table["metric"]
    for i, run in enumerate(data["runs"]):
        for metric, value in run["metrics"].items():
            assert format_value(metric, value) == table[metric][i], metric
    hash_nodes = data["runs"][0]["nodes"]
    assert [(n["node"], n["tasks"], n["share (%)"]) for n in hash_nodes] == [(N1, 3, 75.0), (N2, 1, 25.0)]


def test_csv_writes_a_tidy_summary(csvs: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out" / "summary.csv"
    result = invoke(*csvs, "--csv", str(out))
    assert result.exit_code == 0, result.output
    tidy = pd.read_csv(out)
    assert list(tidy.columns) == ["run", "run_id", "metric", "value"]
    value = tidy.set_index(["run", "metric"])["value"]
    assert value[("hash", "throughput (tasks/s)")] == pytest.approx(0.4)
    assert value[("random", "tasks ok")] == 2
    assert "Wrote the summary" in result.stderr


def test_plot_writes_a_valid_png(csvs: list[str], tmp_path: Path) -> None:
    import matplotlib.image

    out = tmp_path / "plot.png"
    result = invoke(*csvs, "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 500 and image.shape[1] > 1000
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_unwritable_plot_path_is_one_line_exit_2(csvs: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke(*csvs, "--plot", str(blocker / "plot.png"))
    _assert_one_line_error(result, "cannot write the plot")


def _assert_one_line_error(result: Result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such file"),
        ("", "is empty"),
        ("name,score\nada,3\n", "missing columns run_id, job, policy, task_id"),
        (",".join(COLUMNS[:-1]) + "\nx\n", "missing columns run_s;"),
    ],
    ids=["missing", "empty", "foreign", "one-column-short"],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_text(content)
    _assert_one_line_error(invoke(str(path)), expected)


def test_one_bad_file_among_good_ones_fails(csvs: list[str], tmp_path: Path) -> None:
    _assert_one_line_error(invoke(*csvs, str(tmp_path / "typo.csv")), "typo.csv: no such file")


def test_cut_last_line_warns_and_analyses_the_rest(csvs: list[str]) -> None:
    path = Path(csvs[0])
    with path.open("a") as fh:
        fh.write("h1,cache_affinity.py,hash,4,user-4,1,ok,,")  # the crash hit mid-row
    result = invoke(*csvs)
    assert result.exit_code == 0, result.output
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("Warning: ") and "line 6: last line is cut short" in warning[0]
    assert _table(result.stdout)["tasks ok"] == ["4", "2"]  # the cut row is not counted
    assert _table(result.stdout)["makespan (s)"] == ["10.00", "4.00"]


def test_run_without_ok_rows_still_prints(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.csv", [_row("f1", "pack", 0, N1, 0, 1, status="failed")])
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    table = _table(result.stdout)
    assert table["tasks failed"] == ["1"] and table["throughput (tasks/s)"] == ["n/a"]
    assert json.loads(invoke(str(path), "--json").stdout)["runs"][0]["metrics"]["makespan (s)"] is None
    plot = tmp_path / "f.png"
    assert invoke(str(path), "--plot", str(plot)).exit_code == 0 and plot.stat().st_size > 0


def test_no_arguments_is_a_usage_error() -> None:
    result = invoke()
    assert result.exit_code == 2 and "Missing argument" in result.output


def test_shared_bar_axis_fits_the_tallest_run_in_any_position(csvs: list[str]) -> None:
    """Regression: with sharey, the last panel's limit used to win and could clip an earlier, taller run."""
    from raysched.analysis import load
    from raysched.analysis.plots import plot_figure

    for order in (csvs, csvs[::-1]):
        fig = plot_figure(load(order))
        bar_axes = [ax for ax in fig.subfigs[0].axes if ax.get_visible()]
        assert all(ax.get_ylim()[1] >= 3 for ax in bar_axes)  # hash's N1 ran 3 ok tasks


def _write_with(path: Path, extra: dict[str, list[object]], rows: list[list[object]]) -> Path:
    """A CSV with metric columns after the required ones (as `raysched submit` writes a job's own metrics)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*COLUMNS, *extra])
        for i, r in enumerate(rows):
            w.writerow([*r, *(values[i] for values in extra.values())])
    return path


def test_cache_hit_column_prints_the_hit_rate_row(tmp_path: Path) -> None:
    rows = [_row("c1", "hash", i, N1, i, i + 1) for i in range(4)]
    rows.append(_row("c1", "hash", 4, N1, 4, 5, status="failed"))  # a failed task's cell is not counted
    path = _write_with(tmp_path / "c.csv", {"cache_hit": [1, 1, 0, 1, 0]}, rows)
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert _table(result.stdout)["cache hit rate (%)"] == ["75.0%"]  # 3 hits of 4 ok tasks
    as_json = json.loads(invoke(str(path), "--json").stdout)["runs"][0]["metrics"]
    assert as_json["cache hit rate (%)"] == pytest.approx(75.0)


def test_no_cache_hit_column_prints_no_hit_rate_row(csvs: list[str]) -> None:
    assert "cache hit rate" not in invoke(*csvs).stdout


def test_an_empty_or_blank_key_is_no_key(tmp_path: Path) -> None:
    """analyze reads keys with `task_key`, the rule submit and simulate place tasks by, and counts in the key
    figures only the tasks with a key of their own."""
    from raysched.results.schema import task_key

    cells = ["  ", "  ", "shared", "shared", ""]  # the two blank cells are alike: as a key they would be one
    rows = [_row("e1", "hash", i, N1 if i % 2 else N2, i, i + 1) for i in range(len(cells))]
    for r, cell in zip(rows, cells, strict=True):
        r[COLUMNS.index("key")] = cell
    result = invoke(str(_write(tmp_path / "e.csv", rows)))
    assert result.exit_code == 0, result.output
    table = _table(result.stdout)
    # tasks 0, 1 and 4 have no key: placed by their task ids ("0", "1", "4"), left out of the key figures;
    # "shared" ran on N2 and N1 (were the blank cell a key, it would be a second key, over N2 and N1: 2 keys)
    assert {task_key(cell, i) for i, cell in enumerate(cells)} == {"0", "1", "4", "shared"}
    assert table["keys"] == ["1"]
    assert table["key affinity (%)"] == ["0.0%"]  # its one key ran on two nodes


def test_calls_to_a_service_print_replica_figures_and_a_per_replica_table(csvs: list[str], tmp_path: Path) -> None:
    """Four calls of keys a, a, b, b: Shard#0 serves 3 (both a's and one b), Shard#1 one b.

    replicas used 2; imbalance = 3 / mean 2 = 1.5; key affinity by replica: a on one replica, b on two = 50%.
    """
    keys, replicas = ["a", "a", "b", "b"], ["Shard#0", "Shard#0", "Shard#0", "Shard#1"]
    rows = [_row("s1", "p2c", i, N1, i, i + 1) for i in range(4)]
    for r, key in zip(rows, keys, strict=True):
        r[COLUMNS.index("key")] = key
    path = _write_with(tmp_path / "s.csv", {"replica": replicas}, rows)
    result = invoke(str(path), *csvs)
    assert result.exit_code == 0, result.output
    table = _table(result.stdout)
    assert table["replicas used"] == ["2", "n/a", "n/a"]  # the runs of tasks only: not applicable
    assert table["replica imbalance (max/mean)"] == ["1.50", "n/a", "n/a"]
    assert table["key affinity by replica (%)"] == ["50.0%", "n/a", "n/a"]
    per_replica = result.stdout.split("Calls per replica (ok rows)\n")[1].splitlines()
    assert [line.split() for line in per_replica[2:]] == [
        ["p2c", "Shard#0", "3", "75.0%", "2"],
        ["Shard#1", "1", "25.0%", "1"],
    ]
    runs = json.loads(invoke(str(path), *csvs, "--json").stdout)["runs"]
    assert [(r["replica"], r["calls"]) for r in runs[0]["replicas"]] == [("Shard#0", 3), ("Shard#1", 1)]
    assert runs[0]["metrics"]["key affinity by replica (%)"] == 50.0 and runs[1]["replicas"] == []


def test_runs_without_calls_print_nothing_about_replicas(csvs: list[str]) -> None:
    assert "replica" not in invoke(*csvs).stdout
    assert all("replicas" not in run for run in json.loads(invoke(*csvs, "--json").stdout)["runs"])
