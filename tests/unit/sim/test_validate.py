"""`raysched simulate --validate`, the model's fidelity line, worker processes, cache scope, dispatch capacity.

Pure Python, no Ray cluster; traces are written in the results schema by
tests/unit/sim/test_replay.py's helper. Expected values come from the arithmetic in
the comments (the engine's rules: raysched.sim.engine's docstring).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_replay import ok, rows_of, run, write_trace

from raysched.results import sidecar
from raysched.sim.estimate import estimate_cache, estimate_startup, estimate_turnaround_s
from raysched.sim.trace import load_trace
from raysched.sim.workers import assign_workers

ONE_NODE = [{"node_id": "N1", "capacity": {"CPU": 1.0}}]
TWO_CPUS = [{"node_id": "N1", "capacity": {"CPU": 2.0}}]


def _scope_trace(tmp_path: Path, hit_on_the_other_worker: int) -> Path:
    """One node of two workers, rounds of 4 s. In round r (t = 10 + 4r): key A_r starts on worker 0 and runs
    3 s, key B_r on worker 1 runs 1 s; at t + 1.5 a second task of A_r starts, on worker 1 (worker 0 is busy):
    a miss under a per-worker cache, a hit under a per-node one (of 2 keys or more); the trace records it as
    given. At t + 3.5 a new key C_r takes worker 0 (the last freed) and B_r worker 1, recorded as a hit: within
    worker 1's last 2 keys, but 2 other keys ran on the node since B_r (a per-node cache needs 3 keys to hit it,
    and would then hit the second A_r too). So recorded misses fit a per-worker cache of 2 keys exactly, and
    recorded hits a per-node cache of 3 keys."""
    tasks = []
    for r in range(8):
        t = 10.0 + 4 * r
        tasks += [
            {"key": f"A{r}", "started_at": t, "run_s": 3.0, "cache_hit": 0},
            {"key": f"B{r}", "started_at": t, "run_s": 1.0, "cache_hit": 0},
            {"key": f"A{r}", "started_at": t + 1.5, "run_s": 1.0, "cache_hit": hit_on_the_other_worker},
            {"key": f"C{r}", "started_at": t + 3.5, "run_s": 0.1, "cache_hit": 0},
            {"key": f"B{r}", "started_at": t + 3.5, "run_s": 0.1, "cache_hit": 1},
        ]
    return write_trace(tmp_path / f"scope{hit_on_the_other_worker}.csv", tasks, nodes=TWO_CPUS, extra=("cache_hit",))


@pytest.mark.parametrize(("hit", "scope"), [(0, "worker"), (1, "node")])
def test_cache_scope_is_the_one_that_reproduces_the_recorded_hits(tmp_path: Path, hit: int, scope: str) -> None:
    trace = load_trace(_scope_trace(tmp_path, hit))
    workers = assign_workers(trace, dispatch_s=0.0)
    # Worker 0 runs every A_r first, worker 1 every B_r and then the second A_r.
    pairs = zip(workers.order, workers.worker, strict=True)
    by_key = {(trace.keys[p], round(float(trace.started_at[p]))): int(w) for p, w in pairs}
    assert by_key[("A0", 10)] == 0 and by_key[("B0", 10)] == 1 and by_key[("A0", 12)] == 1
    found = estimate_cache(trace, workers)
    assert found is not None
    assert found[:2] == ((scope, 2) if scope == "worker" else (scope, 3))
    assert found[2] == 1.0  # every recorded hit and miss reproduced
    result = ok(run(trace.path, "--policies", "hash", "--miss-s", "0.5"))
    where = "worker process" if scope == "worker" else "node"
    assert f"keys per {where} (estimated)" in result.stderr


def _two_keys_on_two_workers(tmp_path: Path) -> Path:
    # Without a cache_hit column; run 1 s each: a, b, then a, b again.
    return write_trace(tmp_path / "ab.csv", [{"key": k} for k in ("a", "b", "a", "b")])


@pytest.mark.parametrize(("scope", "hit_rate"), [("worker", 0.0), ("node", 50.0)])
def test_a_cache_per_worker_process_or_per_node(tmp_path: Path, scope: str, hit_rate: float) -> None:
    # One node of 2 CPUs, a miss adds 1 s, dispatch 0, no turnaround.
    # t=0: a (worker 0) and b (worker 1) start (admission: what runs now), both miss, both end at 2;
    # a's unit finishes first, so the idle stack is [w0, w1] and the next task (a) gets w1, then b gets w0.
    # Per worker: w1 never held a, w0 never held b: 0 hits of 4. Per node: a and b are cached: 2 hits of 4.
    trace = _two_keys_on_two_workers(tmp_path)
    result = ok(
        run(
            trace, "--nodes", "1x2", "--policies", "random", "--dispatch-ms", 0, "--turnaround-ms", 0,
            "--cache-keys", 4, "--miss-s", 1, "--cache-scope", scope, "--json",
        )
    )  # fmt: skip
    metrics = json.loads(result.stdout)["runs"][0]["metrics"]
    assert metrics["cache hit rate (%)"] == hit_rate
    assert f"cache of 4 keys per {'worker process' if scope == 'worker' else 'node'}," in result.stderr


def test_turnaround_delays_a_workers_next_task(tmp_path: Path) -> None:
    # One node of 1 CPU, three 1 s tasks, dispatch 0, turnaround 100 ms: a worker takes its next task
    # 0.1 s after its finish. Starts 0, 1.1, 2.2: makespan 3.2 s (3.0 without).
    trace = write_trace(tmp_path / "t.csv", [{"key": "a"}, {"key": "b"}, {"key": "c"}])
    out = tmp_path / "sim.csv"
    ok(run(trace, "--nodes", "1x1", "--policies", "random", "--dispatch-ms", 0, "--turnaround-ms", 100, "--out", out))
    assert sorted(rows_of(out)["started_at"]) == pytest.approx([0.0, 1.1, 2.2])


def test_start_rate_spaces_the_drivers_starts(tmp_path: Path) -> None:
    # One node of 4 CPUs, four 1 s tasks placed at once; the driver starts 10 Ray tasks/s at most:
    # starts 0, 0.1, 0.2, 0.3. Without the limit all four start at 0.
    trace = write_trace(tmp_path / "t.csv", [{"key": k} for k in "abcd"])
    spaced, free = tmp_path / "spaced.csv", tmp_path / "free.csv"
    common = ["--nodes", "1x4", "--policies", "random", "--dispatch-ms", 0, "--turnaround-ms", 0]
    result = ok(run(trace, *common, "--start-rate", 10, "--out", spaced))
    assert "Ray tasks start at most 10/s" in result.stderr
    ok(run(trace, *common, "--out", free))
    assert sorted(rows_of(spaced)["started_at"]) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert sorted(rows_of(free)["started_at"]) == pytest.approx([0.0] * 4)


def test_worker_start_up_and_turnarounds_read_from_the_trace(tmp_path: Path) -> None:
    # Node N1 (2 CPUs): task 0 starts at 10 (the run's first start) and runs 2 s; task 1, submitted at 5 and
    # placed at once, starts only at 10.5 on a second worker: that worker was not up before 0.5 s.
    # Tasks 2..24 run 1 s on worker 0 after task 0, each submitted long before: turnaround 20 ms each.
    tasks = [
        {"key": "a", "started_at": 10.0, "run_s": 2.0, "wait_s": 5.0},
        {"key": "b", "started_at": 10.5, "run_s": 10.0, "wait_s": 5.5},
    ]
    t = 12.0
    for i in range(23):
        t += 0.02
        tasks.append({"key": f"c{i}", "started_at": t, "run_s": 1.0, "wait_s": t - 5.0})
        t += 1.0
    trace = load_trace(write_trace(tmp_path / "t.csv", tasks, nodes=TWO_CPUS))
    workers = assign_workers(trace, dispatch_s=0.01)
    assert estimate_startup(workers) == ({"N1": [0.0, 0.5]}, 0.25)
    assert estimate_turnaround_s(workers) == pytest.approx(0.02)
    # Replayed: the second worker's first task starts at 0.5 at the earliest.
    out = tmp_path / "sim.csv"
    result = ok(run(trace.path, "--policies", "random", "--dispatch-ms", 0, "--out", out))
    assert "a worker's turnaround 20 ms (estimated); workers up within 0.5 s (estimated)" in result.stderr
    rows = rows_of(out)
    assert sorted(rows["started_at"])[:2] == pytest.approx([0.0, 0.5])
    # Start-up counts from the simulated run's first start, as the recording counts it from its own: with a
    # dispatch of 100 ms the first task starts at 0.1, the second worker is up at 0.1 + 0.5.
    later = tmp_path / "later.csv"
    ok(run(trace.path, "--policies", "random", "--dispatch-ms", 100, "--out", later))
    assert sorted(rows_of(later)["started_at"])[:2] == pytest.approx([0.1, 0.6])


def _recorded(tmp_path: Path) -> Path:
    # Four 1 s tasks run one after another on N1 (1 CPU) from t=10, each submitted 0.5 s before its start:
    # measured from the first start, makespan 4 s, throughput 1 task/s, waits 0, 0.5, 0.5, 0.5 (the first
    # three drawn before the first start count from it: 0, 1, 2, 3 - 0 ... see below).
    return write_trace(tmp_path / "rec.csv", [{"key": k} for k in "abcd"], nodes=ONE_NODE)


def test_validate_prints_measured_against_simulated(tmp_path: Path) -> None:
    trace = _recorded(tmp_path)
    result = ok(run(trace, "--validate", "--dispatch-ms", 0, "--turnaround-ms", 0, "--json"))
    report = json.loads(result.stdout)
    assert set(report) >= {"measured", "simulated", "error"}
    measured, simulated, error = report["measured"], report["simulated"], report["error"]
    # Measured: starts 10, 11, 12, 13; submitted 9.5, 10.5, 11.5, 12.5; counted from the first start (10):
    # waits 0, 0.5, 0.5, 0.5; makespan 4; throughput 1/s.
    assert measured["makespan (s)"] == pytest.approx(4.0)
    assert measured["throughput (tasks/s)"] == pytest.approx(1.0)
    assert measured["wait_s p95 (s)"] == pytest.approx(0.5)
    assert measured["nodes used"] == 1
    assert measured["tasks per node"] == {"N1": 4}
    # Simulated on the recorded node, dispatch 0: task 0 at 0; then each next one is placed when the
    # previous finishes (admission 1, then the Pacer's queue depth) and starts back to back: makespan 4.
    assert simulated["makespan (s)"] == pytest.approx(4.0)
    assert simulated["tasks per node"] == {"N1": 4}
    for metric, value in error.items():
        m, s = measured[metric], simulated[metric]
        expected = 0.0 if m == s else (s - m) / abs(m)
        assert value == pytest.approx(expected), metric
    text = ok(run(trace, "--validate", "--dispatch-ms", 0, "--turnaround-ms", 0))
    assert text.stdout.splitlines()[0].split() == ["metric", "measured", "simulated", "error"]
    assert any(line.startswith("throughput (tasks/s)") and line.endswith("%") for line in text.stdout.splitlines())
    assert "model fidelity: this run replayed under hash on its recorded cluster" in text.stderr


def test_validate_error_is_relative_and_signed(tmp_path: Path) -> None:
    # Replayed with a 1 s turnaround: each of tasks 1..3 starts 1 s after the previous finish at the earliest;
    # the simulated makespan is longer than 4 s, so the makespan error is positive and throughput's negative.
    trace = _recorded(tmp_path)
    report = json.loads(ok(run(trace, "--validate", "--dispatch-ms", 0, "--turnaround-ms", 1000, "--json")).stdout)
    assert report["simulated"]["makespan (s)"] >= 7.0 - 1e-9
    assert report["error"]["makespan (s)"] > 0.7
    assert report["error"]["throughput (tasks/s)"] < -0.4


def test_every_what_if_says_how_well_the_model_reproduced_the_trace(tmp_path: Path) -> None:
    trace = _recorded(tmp_path)
    what_if = ok(run(trace, "--policies", "random,p2c", "--dispatch-ms", 0))
    lines = [line for line in what_if.stderr.splitlines() if line.startswith("model fidelity:")]
    assert len(lines) == 1 and "largest error" in lines[0] and "replayed under hash" in lines[0]
    # A trace without a recorded cluster cannot be replayed as recorded: the line says so.
    bare = write_trace(tmp_path / "bare.csv", [{"key": k} for k in "ab"])
    unchecked = ok(run(bare, "--nodes", "1x2", "--policies", "random"))
    assert "model fidelity: not checked (no cluster recorded for run r1" in unchecked.stderr


def test_fidelity_figures_match_the_replay_of_the_recorded_policy(tmp_path: Path) -> None:
    # The what-if line's figures are those of --validate (the same replay).
    trace = _recorded(tmp_path)
    report = json.loads(ok(run(trace, "--validate", "--json")).stdout)
    line = next(x for x in ok(run(trace, "--policies", "hash")).stderr.splitlines() if x.startswith("model"))
    assert f"throughput {report['error']['throughput (tasks/s)'] * 100:+.0f}%" in line
    assert not math.isnan(float(np.float64(report["simulated"]["throughput (tasks/s)"])))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--nodes", "2x2"], "--validate replays the run on its own recorded cluster"),
        (["--kill-node", "1"], "--validate replays the run on its own recorded cluster"),
        (["--policies", "random"], "drop --policies"),
        (["--plot", "x.png"], "drop --plot"),
        (["--cache-scope", "rack"], "Invalid value for '--cache-scope'"),
        (["--start-rate", "-1"], "Invalid value for '--start-rate'"),
        (["--turnaround-ms", "soon"], "Invalid value for '--turnaround-ms'"),
    ],
)
def test_bad_validate_input_is_one_error_line_and_exit_2(tmp_path: Path, extra: list[str], message: str) -> None:
    result = run(_recorded(tmp_path), "--validate", *extra)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert result.stdout == ""


def test_validate_without_a_recorded_cluster_exits_2(tmp_path: Path) -> None:
    bare = write_trace(tmp_path / "bare.csv", [{"key": k} for k in "ab"])
    result = run(bare, "--validate")
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "no cluster recorded for run r1" in errors[0]


# -- repeats: a policy without a seed is one draw of many ----------------------------------------------


def _spread_trace(tmp_path: Path) -> Path:
    # 24 tasks of three keys on three 1-CPU nodes, each a 1 s miss in the recording; replayed with a cache of
    # one key per node and a miss of 1 s (0.1 s on a hit): where random puts each key decides the run.
    nodes = [{"node_id": f"N{i}", "capacity": {"CPU": 1.0}} for i in (1, 2, 3)]
    tasks = [{"key": f"k{i % 3}", "run_s": 1.1, "cache_hit": 0, "node": f"N{1 + i % 3}"} for i in range(24)]
    return write_trace(tmp_path / "spread.csv", tasks, nodes=nodes, extra=("cache_hit",))


def _throughput(rows: pd.DataFrame) -> float:
    ok_rows = rows[rows["status"] == "ok"]
    return len(ok_rows) / (ok_rows["finished_at"].max() - ok_rows["started_at"].min())


def test_without_a_seed_the_run_of_median_throughput_among_nine_seeds_is_reported(tmp_path: Path) -> None:
    trace = _spread_trace(tmp_path)
    common = ["--policies", "random", "--dispatch-ms", 0, "--turnaround-ms", 0, "--cache-keys", 1, "--miss-s", 1]
    seeded = {}
    for seed in range(9):
        out = tmp_path / f"seed{seed}.csv"
        result = ok(run(trace, *common, "--seed", seed, "--out", out))
        assert "median" not in result.stderr  # a seed given: one replay
        seeded[seed] = rows_of(out).sort_values("task_id")
    speeds = sorted((_throughput(rows), seed) for seed, rows in seeded.items())
    assert speeds[0][0] < speeds[-1][0]  # the seeds differ: the median is a real choice
    median_seed = speeds[4][1]
    out = tmp_path / "unseeded.csv"
    result = ok(run(trace, *common, "--out", out))
    assert "without a seed: each policy's median run of 9 seeds (0-8)" in result.stderr
    reported = rows_of(out).sort_values("task_id")
    assert reported["node_ran"].tolist() == seeded[median_seed]["node_ran"].tolist()
    assert reported["started_at"].tolist() == pytest.approx(seeded[median_seed]["started_at"].tolist())


def test_repeats_sets_how_many_seeds(tmp_path: Path) -> None:
    trace = _spread_trace(tmp_path)
    three = ok(run(trace, "--policies", "random", "--miss-s", 1, "--repeats", 3))
    assert "median run of 3 seeds (0-2)" in three.stderr
    once = ok(run(trace, "--policies", "random", "--miss-s", 1, "--repeats", 1))
    assert "median run" not in once.stderr
    bad = run(trace, "--policies", "random", "--repeats", 0)
    assert bad.exit_code == 2 and "Invalid value for '--repeats'" in bad.output


def test_a_worker_the_recording_did_not_show_is_up_with_its_nodes_last_recorded_one(tmp_path: Path) -> None:
    # N1 (3 CPUs) showed two workers, up at 0 and 0.5 (task b was placed at 5 and waited for its worker until
    # 10.5; task c reused worker 1). Replayed, the three tasks start together: the third worker, never seen,
    # is up at 0.5 too (its node's last recorded worker), not at the median of all nodes' workers (0.25).
    tasks = [
        {"key": "a", "started_at": 10.0, "run_s": 2.0, "wait_s": 5.0},
        {"key": "b", "started_at": 10.5, "run_s": 2.0, "wait_s": 5.5},
        {"key": "c", "started_at": 20.0, "run_s": 2.0, "wait_s": 0.0},
    ]
    trace = write_trace(tmp_path / "t.csv", tasks, nodes=[{"node_id": "N1", "capacity": {"CPU": 3.0}}])
    assert estimate_startup(assign_workers(load_trace(trace), dispatch_s=0.01)) == ({"N1": [0.0, 0.5]}, 0.25)
    out = tmp_path / "sim.csv"
    ok(run(trace, "--policies", "random", "--dispatch-ms", 0, "--turnaround-ms", 0, "--out", out))
    assert sorted(rows_of(out)["started_at"]) == pytest.approx([0.0, 0.5, 0.5])


def test_the_cache_size_hits_as_often_as_the_run_did_before_it_agrees_access_by_access(tmp_path: Path) -> None:
    # One node, in start order: p p q q a b a b c e c. Two tasks of p (and of q) started together and both
    # missed (stack distance 0); the second a and b hit (distance 1), the second c missed (distance 1).
    # 2 hits recorded. A cache of 1 key hits exactly 2 (the second p and q): as often as the run did, though
    # it agrees with 7 of 11 accesses; a cache of 2 keys agrees with 8 but hits 5. The estimate is 1.
    keys = ["p", "p", "q", "q", "a", "b", "a", "b", "c", "e", "c"]
    hits = [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0]
    tasks = [{"key": k, "cache_hit": h} for k, h in zip(keys, hits, strict=True)]
    trace = load_trace(write_trace(tmp_path / "t.csv", tasks, nodes=ONE_NODE, extra=("cache_hit",)))
    found = estimate_cache(trace, assign_workers(trace, dispatch_s=0.0), "node")
    assert found is not None and found[:2] == ("node", 1)
    assert found[2] == pytest.approx(7 / 11)


def test_a_missed_key_enters_the_cache_when_its_load_ends_as_the_simulator_takes_it_in(tmp_path: Path) -> None:
    # One node of 2 CPUs, a miss loads for 1 s (misses run 1.1 s, hits 0.1 s): y misses at 10 (in at 11),
    # x misses at 12 (in at 13), y hits at 12.5, x hits at 13.5. While x loads, y is the only key in: one key
    # is enough for both hits. Counted by starts alone, x and y alternate and it would take two.
    tasks = [
        {"key": "y", "started_at": 10.0, "run_s": 1.1, "cache_hit": 0},
        {"key": "x", "started_at": 12.0, "run_s": 1.1, "cache_hit": 0},
        {"key": "y", "started_at": 12.5, "run_s": 0.1, "cache_hit": 1},
        {"key": "x", "started_at": 13.5, "run_s": 0.1, "cache_hit": 1},
    ]
    path = write_trace(tmp_path / "t.csv", tasks, nodes=TWO_CPUS, extra=("cache_hit",))
    trace = load_trace(path)
    workers = assign_workers(trace, dispatch_s=0.0)
    assert estimate_cache(trace, workers, "node", load_s=1.0) == ("node", 1, 1.0)
    assert estimate_cache(trace, workers, "node") == ("node", 2, 1.0)  # no load: each key in at its start
    result = ok(run(path, "--policies", "hash", "--cache-scope", "node"))
    assert "cache of 1 keys per node (estimated), a miss adds 1 s (estimated)" in result.stderr


def test_the_pacer_hears_the_round_trip_the_run_recorded(tmp_path: Path) -> None:
    # 400 tasks of 10 ms on two 1-CPU nodes. The runner's pacer queues deeper the longer a round trip (a finish
    # noticed, the brain asked, the answer back) is against a task: recorded 2 ms, the replay keeps little
    # queued; recorded 200 ms, it queues far more and every task waits longer.
    nodes = [{"node_id": f"N{i}", "capacity": {"CPU": 1.0}} for i in (1, 2)]
    tasks = [{"key": f"k{i}", "run_s": 0.01, "started_at": 10 + 0.005 * i, "wait_s": 0.1} for i in range(400)]
    waits = {}
    for gap in (0.002, 0.2):
        path = write_trace(tmp_path / f"t{gap}.csv", tasks, nodes=nodes)
        sidecar.update_run(path, "r1", {"pacing": {"brain_rtt_s": 0.001, "notice_s": 0.0, "gap_s": gap}})
        out = tmp_path / f"sim{gap}.csv"
        result = ok(run(path, "--policies", "random", "--seed", 0, "--dispatch-ms", 1, "--out", out))
        assert f"the pacer's round trip {gap * 1000:g} ms (recorded)" in result.stderr
        waits[gap] = rows_of(out)["wait_s"].mean()
    assert waits[0.2] > 2 * waits[0.002]
    # Recorded without it, the simulated time between calls and the dispatch time stand in.
    bare = ok(run(write_trace(tmp_path / "bare.csv", tasks, nodes=nodes), "--policies", "random"))
    assert "the pacer's round trip" not in bare.stderr


def test_the_brain_hears_of_a_finish_only_once_the_driver_noticed_it(tmp_path: Path) -> None:
    # One node of 1 CPU, two 1 s tasks, dispatch 0. Task 0 runs 0-1. The recorded driver noticed a finish
    # 0.2 s after it on average: the brain hears of it at the first call after 1.2, and places task 1 then.
    tasks = [{"key": "a"}, {"key": "b"}]
    starts = {}
    for notice in (0.0, 0.2):
        path = write_trace(tmp_path / f"t{notice}.csv", tasks, nodes=ONE_NODE)
        sidecar.update_run(path, "r1", {"pacing": {"brain_rtt_s": 0.001, "notice_s": notice, "gap_s": 0.01}})
        out = tmp_path / f"sim{notice}.csv"
        ok(run(path, "--policies", "random", "--seed", 0, "--dispatch-ms", 0, "--turnaround-ms", 0, "--out", out))
        starts[notice] = sorted(rows_of(out)["started_at"])
    assert starts[0.0] == pytest.approx([0.0, 1.0])
    assert starts[0.2] == pytest.approx([0.0, 1.2])


def test_one_clock_analyze_the_summary_and_validate_agree_on_one_csv(tmp_path: Path) -> None:
    """Issue 30: the three printed different makespans for one run (first submission against first start).

    Four 1 s tasks start at 10, 11, 12, 13 on N1; the first waited 5 s for Ray to start a worker (submitted
    at 5), the others 0.5 s. The one clock: makespan = last finish 14 - first start 10 = 4 s, throughput
    4 / 4 = 1 task/s; start-up = first start 10 - first submission 5 = 5 s, printed on its own.
    """
    from click.testing import CliRunner

    from raysched.cli.analyze import analyze_command
    from raysched.results.outcome import RunOutcome
    from raysched.results.report import format_summary

    tasks = [{"key": "a", "wait_s": 5.0}, *({"key": k} for k in "bcd")]
    trace = write_trace(tmp_path / "startup.csv", tasks, nodes=ONE_NODE)
    analyzed = json.loads(CliRunner().invoke(analyze_command, [str(trace), "--json"]).stdout)["runs"][0]["metrics"]
    measured = json.loads(ok(run(trace, "--validate", "--json")).stdout)["measured"]
    outcome = RunOutcome("r1", ok=4)
    for _, row in rows_of(trace).iterrows():  # as the run loop counts each ok task (driver.accounting.count_ok)
        outcome.timed(row["submitted_at"], row["started_at"], row["finished_at"])
    summary = {line.split()[0]: line.split()[1] for line in format_summary(outcome, "j", "hash").splitlines()[1:]}

    assert analyzed["makespan (s)"] == measured["makespan (s)"] == pytest.approx(4.0)
    assert analyzed["throughput (tasks/s)"] == measured["throughput (tasks/s)"] == pytest.approx(1.0)
    assert float(summary["makespan"]) == pytest.approx(4.0) and float(summary["tasks/s"]) == pytest.approx(1.0)
    assert analyzed["start-up (s)"] == pytest.approx(5.0) and float(summary["start-up"]) == pytest.approx(5.0)
