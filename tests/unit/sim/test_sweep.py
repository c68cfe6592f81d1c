"""`raysched simulate --sweep NAME=V1,V2,...`: one hash knob over several settings, one table.

Pure Python, no Ray cluster; traces are written in the results schema by
tests/unit/sim/test_replay.py's helper. Expectations come from what the knob means
(a pure ring never moves a key; a tighter bound never keeps more keys home),
not from what the code printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_replay import ok, rows_of, run, write_trace

from raysched.analysis import M_AFFINITY, M_MAKESPAN, M_SPILLED, M_THROUGHPUT, summarize
from raysched.results import sidecar

HIT_RATE = "cache hit rate (%)"
WAIT_P95 = "wait_s p95 (s)"
FOUR_NODES = [{"node_id": f"N{i}", "capacity": {"CPU": 2.0}} for i in range(4)]


def skewed(tmp_path: Path, name: str = "skew.csv", cache: bool = False, locality_wait: float | None = None) -> Path:
    """240 one-second tasks on 4 nodes of 2 CPUs: key "hot" is half of them, 6 cold keys share the rest.

    All start at once, so a pure ring queues the hot key's 120 tasks on one node (2 slots: about 60 s),
    while a bound of c x fair share sends the overflow elsewhere and breaks that key's affinity.
    ``locality_wait`` is recorded in the sidecar as the run's option (the simulation then uses it).
    """
    tasks = [
        {"key": "hot" if i % 2 == 0 else f"cold{i % 12}", "started_at": 10.0, "run_s": 1.0, "node": f"N{i % 4}"}
        for i in range(240)
    ]
    if cache:
        for i, t in enumerate(tasks):
            t["cache_hit"] = int(i >= 24)
    extra = ("cache_hit",) if cache else ()
    path = write_trace(tmp_path / name, tasks, extra=extra)
    options = {} if locality_wait is None else {"locality_wait": locality_wait}
    sidecar.record_run(
        path, {"run_id": "r1", "job": "job.py", "policy": "hash", "options": options, "cluster": {"nodes": FOUR_NODES}}
    )
    return path


def sweep_json(*args: object) -> list[dict]:
    return json.loads(ok(run(*args, "--json", "--dispatch-ms", 10)).stdout)


def table_lines(stdout: str) -> list[list[str]]:
    """The printed table's body rows, split into cells (cells hold no spaces)."""
    lines = stdout.strip().splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.replace(" ", "")) == {"-"})
    return [line.split() for line in lines[rule + 1 :]]


def test_one_row_per_setting_in_the_order_given(tmp_path: Path) -> None:
    trace = skewed(tmp_path)
    result = ok(run(trace, "--sweep", "load-factor=2,1.1,off,1.5", "--dispatch-ms", 10))
    header = result.stdout.strip().splitlines()[0]
    assert header.split()[0] == "load-factor"
    for metric in (M_MAKESPAN, M_THROUGHPUT, WAIT_P95, M_AFFINITY, M_SPILLED):
        assert metric in header
    assert HIT_RATE not in header  # no cache_hit column, no --cache-keys: no cache modelled
    rows = table_lines(result.stdout)
    assert [r[0] for r in rows] == ["2", "1.1", "off", "1.5"]  # not sorted: as given
    assert all(r[-1].endswith("%") for r in rows)  # spilled (%), the last column


def test_off_is_the_pure_ring(tmp_path: Path) -> None:
    records = sweep_json(skewed(tmp_path), "--sweep", "load-factor=1.1,off")
    by = {r["setting"]: r for r in records}
    assert by["off"][M_AFFINITY] == 100.0  # a key never leaves its owner
    assert by["off"][M_SPILLED] == 0.0
    # The hot key alone is 120 one-second tasks on one 2-CPU node: at least 60 s.
    assert by["off"][M_MAKESPAN] >= 60.0
    # A bound of 1.1 x fair share must move the hot key's overflow: lower affinity, shorter run.
    assert by["1.1"][M_AFFINITY] < 100.0
    assert by["1.1"][M_MAKESPAN] < by["off"][M_MAKESPAN] / 2


def test_a_stricter_bound_never_keeps_more_keys_home(tmp_path: Path) -> None:
    # Only the bound may move a key here: a locality wait of 1,000 s never runs out in this 30-80 s run.
    # (Under the default wait a looser bound can lose affinity: the hot key's home stays full, and cold keys
    # that share it leave after their wait; that is a second mechanism, not the bound's.)
    settings = ["1", "1.1", "1.25", "1.5", "2", "3", "off"]  # strictest first
    trace = skewed(tmp_path, locality_wait=1000.0)
    records = sweep_json(trace, "--sweep", "load-factor=" + ",".join(settings))
    assert [r["setting"] for r in records] == settings
    affinity = [r[M_AFFINITY] for r in records]
    assert affinity == sorted(affinity), affinity
    assert affinity[0] < affinity[-1]  # the knob really changes something on this trace


def test_json_records(tmp_path: Path) -> None:
    records = sweep_json(skewed(tmp_path, cache=True), "--sweep", "locality-wait=0,auto", "--miss-s", 0.2)
    assert isinstance(records, list) and len(records) == 2
    assert [r["setting"] for r in records] == ["0", "auto"]
    for r in records:
        assert set(r) == {
            "setting",
            "knob",
            "policy",
            M_MAKESPAN,
            M_THROUGHPUT,
            WAIT_P95,
            M_AFFINITY,
            HIT_RATE,
            M_SPILLED,
        }
        assert r["knob"] == "locality-wait" and r["policy"] == "hash"
        assert 0.0 <= r[HIT_RATE] <= 100.0
        # 240 tasks over 8 slots of 1 s (+ misses): at least 30 s, so at most 8 tasks/s
        assert r[M_MAKESPAN] >= 30.0 and 0 < r[M_THROUGHPUT] <= 8.0


def test_other_policies_are_one_reference_row(tmp_path: Path) -> None:
    records = sweep_json(skewed(tmp_path), "--sweep", "vnodes=10,200", "--policies", "random,hash")
    assert [(r["policy"], r["setting"]) for r in records] == [("hash", "10"), ("hash", "200"), ("random", "-")]
    # random ignores keys: with 13 keys over 4 nodes and 240 tasks, hardly any key stays on one node
    assert records[-1][M_AFFINITY] < 50.0


def test_plot_writes_the_frontier_png(tmp_path: Path) -> None:
    for cache in (False, True):
        png = tmp_path / f"frontier{cache}.png"
        args = ("--miss-s", 0.2) if cache else ()
        trace = skewed(tmp_path, f"t{cache}.csv", cache=cache)
        ok(run(trace, "--sweep", "load-factor=1.25,off", "--plot", png, "--dispatch-ms", 10, *args))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000


def test_out_keeps_each_setting_a_run_that_analyze_tells_apart(tmp_path: Path) -> None:
    out = tmp_path / "swept.csv"
    ok(run(skewed(tmp_path), "--sweep", "load-factor=1.1,off", "--out", out, "--dispatch-ms", 10))
    rows = rows_of(out)
    assert rows["run_id"].nunique() == 2
    assert len(rows) == 2 * 240
    labels = list(summarize(rows).columns)
    assert labels == ["hash c=1.1", "hash c=off"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--sweep", "cache-keys=1,2"), "cannot turn 'cache-keys'"),
        (("--sweep", "load-factor"), "NAME=V1,V2"),
        (("--sweep", "load-factor="), "lists no values"),
        (("--sweep", "load-factor=1.1,,2"), "empty value"),
        (("--sweep", "load-factor=0.5,2"), "load-factor"),
        (("--sweep", "load-factor=1.5,fast"), "load-factor"),
        (("--sweep", "load-factor=2,2.0"), "repeats"),
        (("--sweep", "locality-wait=-1,auto"), "locality wait"),
        (("--sweep", "vnodes=0,10"), "vnodes"),
        (("--sweep", "load-factor=1.1,2", "--validate"), "drop --sweep"),
        (("--sweep", "load-factor=1.1,2", "--load-factor", "1.5"), "drop --load-factor"),
        (("--sweep", "load-factor=1.1,2", "--policies", "random,p2c"), "names none: add hash"),
    ],
)
def test_bad_sweep_is_one_error_line_exit_2_and_writes_nothing(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    out, png = tmp_path / "out.csv", tmp_path / "plot.png"
    result = run(skewed(tmp_path), *args, "--out", out, "--plot", png)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and says in errors[0], result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not png.exists() and not (tmp_path / "out.json").exists()
