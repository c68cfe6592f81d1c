"""`raysched simulate`: the virtual-clock driver around the real brain, the cache model, churn, bad input.

Pure Python, no Ray cluster. Traces are written here in the results schema;
expected values come from the arithmetic in the comments, not from the code.

Facts of the model the arithmetic uses (raysched.sim.engine, raysched.driver.pacing):
* the brain decides at the virtual time of a call; the answer (and the tasks it
  placed) reach the driver and the nodes one dispatch time later;
* one call in flight; with a dispatch of 125 ms (> the runner's 50 ms poll) the
  driver calls again as soon as an answer is back, so calls fall on multiples of 0.125 s;
* before any task has finished the Pacer's queue depth is 0, so the brain
  admits only what runs now (overcommit 1); once it has seen a 1 s task and
  round trips of 0.125-0.25 s, depth = ceil(2 x gap / 1 s) = 1, overcommit 2
  (one task may queue behind the one running).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from raysched.analysis import load, summarize
from raysched.cli.simulate import simulate_command
from raysched.driver.rules import LOST_ATTEMPTS_LIMIT
from raysched.results import sidecar
from raysched.results.schema import BASE_COLUMNS
from raysched.sim import SimInputError
from raysched.sim.cache import NodeCache
from raysched.sim.cluster import parse_add_node, parse_kill_node, parse_nodes
from raysched.sim.estimate import estimate_cache_keys, estimate_dispatch_s, estimate_miss_s
from raysched.sim.trace import load_trace

ROOT = Path(__file__).resolve().parents[3]


def write_trace(
    path: Path,
    tasks: list[dict[str, Any]],
    *,
    run_id: str = "r1",
    nodes: list[dict] | None = None,
    extra: tuple[str, ...] = (),
) -> Path:
    """A results CSV of one run: task i is ok on N1, started at 10 + i, unless the dict says otherwise."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*BASE_COLUMNS, *extra])
        for i, t in enumerate(tasks):
            run_s, start = t.get("run_s", 1.0), t.get("started_at", 10.0 + i)
            wait = t.get("wait_s", 0.5)
            writer.writerow(
                [
                    run_id,
                    "job.py",
                    "hash",
                    i,
                    t.get("key", f"k{i}"),
                    1,
                    t.get("status", "ok"),
                    "",
                    t.get("node", "N1"),
                    t.get("node", "N1"),
                    start - wait,
                    start,
                    start + run_s,
                    wait,
                    run_s,
                    t.get("demand", "CPU=1"),
                    "",
                    t.get("brain_wait_s", 0.0),
                    t.get("replica", ""),
                    t.get("via", "task"),
                    t.get("executor", ""),
                    t.get("latency_s", ""),
                    *[t[c] for c in extra],
                ]
            )
    if nodes is not None:
        sidecar.record_run(
            path, {"run_id": run_id, "job": "job.py", "policy": "hash", "options": {}, "cluster": {"nodes": nodes}}
        )
    return path


def run(*args: Any) -> Result:
    return CliRunner().invoke(simulate_command, [str(a) for a in args])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def rows_of(path: Path) -> pd.DataFrame:
    return load([path])


# -- event order ------------------------------------------------------------------------------------


def test_placement_dispatch_and_node_queue(tmp_path: Path) -> None:
    # One node of 1 CPU, three 1 s tasks, dispatch 125 ms.
    # t=0: call 1 places task 0 (overcommit 1); tasks 1, 2 wait in the brain.
    # t=0.125: task 0 starts (placement 0 + dispatch), finishes 1.125; polls follow every 0.125 s.
    # t=1.125: the finish rides the next call, task 1 is placed; the pacer has heard no round trip yet (the
    # first call after the first finish, rules.paces), so admission stays 1.
    # t=1.25: task 1 reaches the node and starts (ends 2.25); the answer was the second call after the first
    # finish: the pacer hears it, overcommit is now 2.
    # t=1.375: the next poll places task 2; it reaches the node at 1.5, queues there and starts at 2.25.
    trace = write_trace(tmp_path / "t.csv", [{"key": "a"}, {"key": "b"}, {"key": "c"}])
    out = tmp_path / "sim.csv"
    ok(run(trace, "--nodes", "1x1", "--dispatch-ms", 125, "--policies", "random", "--out", out))
    df = rows_of(out).sort_values("task_id")
    assert df["started_at"].tolist() == pytest.approx([0.125, 1.25, 2.25])
    assert df["finished_at"].tolist() == pytest.approx([1.125, 2.25, 3.25])
    assert df["submitted_at"].tolist() == [0.0, 0.0, 0.0]  # virtual seconds from 0
    assert df["brain_wait_s"].tolist() == pytest.approx([0.0, 1.125, 1.375])  # placed at 0, 1.125, 1.375
    assert set(df["node_ran"]) == {"n000"}


def _capacity_ok(df: pd.DataFrame, capacities: dict[str, dict[str, float]]) -> None:
    """At no instant does the work running on a node exceed its capacity (finishes before starts at a tie)."""
    ran = df[df["status"] == "ok"]
    for node, rows in ran.groupby("node_ran"):
        events = []
        for start, end, demand in zip(rows["started_at"], rows["finished_at"], rows["demand"], strict=True):
            amounts = dict((k, float(v)) for k, v in (p.split("=") for p in demand.split(";")))
            events += [(start, 1, amounts), (end, 0, amounts)]
        used: dict[str, float] = {}
        for _, starting, amounts in sorted(events, key=lambda e: (e[0], e[1])):
            for r, a in amounts.items():
                used[r] = used.get(r, 0.0) + (a if starting else -a)
                assert used[r] <= capacities[node].get(r, 0.0) + 1e-9, (node, r, used[r])


MIXED = [
    {"key": f"k{i % 20}", "demand": ("CPU=1", "CPU=2", "CPU=1;ssd=1")[i % 3], "run_s": 0.01 + (i * 37 % 29) / 100}
    for i in range(300)
]


@pytest.mark.parametrize("policy", ["hash", "random", "p2c", "greedy", "pack"])
def test_never_before_dispatch_never_on_a_full_or_dead_node(tmp_path: Path, policy: str) -> None:
    # Nodes n000, n001 (2 CPUs), n002 (2 CPUs + 2 ssd), n003 (4 CPUs); n001 dies at 1.0; n004 (2 CPUs) joins at 1.5.
    trace = write_trace(tmp_path / "t.csv", MIXED)
    out = tmp_path / "sim.csv"
    ok(
        run(
            trace,
            "--nodes",
            "2x2,1x2+ssd=2,1x4",
            "--dispatch-ms",
            20,
            "--policies",
            policy,
            "--out",
            out,
            "--kill-node",
            "1.0:n001",
            "--add-node",
            "1.5:2",
        )
    )
    df = rows_of(out)
    done = df[df["status"] == "ok"]
    assert sorted(done["task_id"]) == list(range(300))  # each task exactly once ok
    # Placed at submitted + brain_wait at the earliest (the brain took it at a call, after it was drawn);
    # it starts no earlier than 20 ms after that.
    assert (done["started_at"] >= done["submitted_at"] + done["brain_wait_s"] + 0.020 - 1e-9).all()
    capacities = {
        "n000": {"CPU": 2},
        "n001": {"CPU": 2},
        "n002": {"CPU": 2, "ssd": 2},
        "n003": {"CPU": 4},
        "n004": {"CPU": 2},
    }
    _capacity_ok(df, capacities)
    on_dead = done[done["node_ran"] == "n001"]
    assert not on_dead.empty  # n001 ran work before it died
    assert (on_dead["finished_at"] <= 1.0 + 1e-9).all()  # what ran there at 1.0 was lost, nothing started later
    lost = df[df["status"] == "retried"]
    assert not lost.empty  # it died with work on it
    assert (lost["node_chosen"] == "n001").all()
    on_new = done[done["node_ran"] == "n004"]
    assert not on_new.empty  # the node that joined took work
    assert (on_new["started_at"] >= 1.5).all()
    again = done[done["task_id"].isin(lost["task_id"])]
    assert set(again["task_id"]) == set(lost["task_id"])  # every lost task ended ok on another attempt
    assert (again["attempt"] >= 2).all() and (again["submitted_at"] >= 1.0).all()


# -- the cache ---------------------------------------------------------------------------------------


def test_cache_lru_and_miss_cost(tmp_path: Path) -> None:
    # One node of 1 CPU caching 1 key, a miss costs 0.5 s; keys a, a, b, a of 1 s each, run in that order.
    # a: miss (1.5 s; a cached at its start + 0.5); a: hit (1 s); b: miss (1.5 s, evicts a); a: miss (1.5 s).
    trace = write_trace(tmp_path / "t.csv", [{"key": k} for k in "aaba"])
    out = tmp_path / "sim.csv"
    result = ok(
        run(
            trace,
            "--nodes",
            "1x1",
            "--dispatch-ms",
            125,
            "--policies",
            "random",
            "--cache-keys",
            1,
            "--miss-s",
            0.5,
            "--out",
            out,
            "--json",
        )
    )
    df = rows_of(out).sort_values("task_id")
    assert df["cache_hit"].tolist() == [0, 1, 0, 0]
    assert df["run_s"].tolist() == pytest.approx([1.5, 1.0, 1.5, 1.5])
    figures = json.loads(result.stdout)["runs"][0]["metrics"]
    assert figures["cache hit rate (%)"] == pytest.approx(25.0)  # 1 hit of 4


def test_node_cache_keys_enter_when_loaded() -> None:
    cache = NodeCache(2)
    assert cache.lookup("a", 0.0, 0.5) is False  # loading until 0.5
    assert cache.lookup("a", 0.2, 0.5) is False  # a second task of the key during the load misses too
    assert cache.lookup("a", 0.5, 0.5) is True
    # b and c both enter at 1.5 (b first); with room for 2, a (used last at 0.5, re-loaded at 0.7) leaves.
    assert cache.lookup("b", 1.0, 0.5) is False and cache.lookup("c", 1.0, 0.5) is False
    assert cache.lookup("b", 2.0, 0.5) is True
    assert list(cache.keys) == ["c", "b"]
    assert cache.lookup("a", 2.0, 0.5) is False


def test_estimates_from_a_trace_with_cache_hits(tmp_path: Path) -> None:
    # One node ran keys a, b, c, a, b, c, ... (12 tasks): the first three missed (1.25 s), the rest hit (0.25 s).
    # Miss cost = median(misses) - median(hits) = 1.25 - 0.25 = 1.0 s.
    # An LRU of 3 keys reproduces all 12 (every re-use has 2 other keys in between: stack distance 2 < 3);
    # an LRU of 2 would miss all 12 (cyclic), agreeing on 3 only: N = 3.
    # Dispatch: wait_s - brain_wait_s is 0.1, 0.2, ..., 1.0, then 0.1, 0.2 again; the 0.5th percentile (linear)
    # of the sorted 12 values 0.1, 0.1, 0.2, 0.2, 0.3, ... sits at position 0.005 x 11 = 0.055, between two 0.1s.
    tasks = [
        {
            "key": "abc"[i % 3],
            "run_s": 1.25 if i < 3 else 0.25,
            "cache_hit": 0 if i < 3 else 1,
            "wait_s": 0.1 * (i % 10 + 1),
        }
        for i in range(12)
    ]
    trace = load_trace(write_trace(tmp_path / "t.csv", tasks, extra=("cache_hit",)))
    assert estimate_miss_s(trace) == pytest.approx(1.0)
    assert estimate_cache_keys(trace) == 3
    assert estimate_dispatch_s(trace) == pytest.approx(0.1)


def test_base_duration_is_the_hit_time(tmp_path: Path) -> None:
    # The trace's misses cost 1.0 s (as above), so every task's base is 0.25 s; simulated on 1 node caching
    # 3 keys with the estimated miss cost, the first a, b, c miss (1.25 s) and the rest hit (0.25 s).
    tasks = [{"key": "abc"[i % 3], "run_s": 1.25 if i < 3 else 0.25, "cache_hit": 0 if i < 3 else 1} for i in range(12)]
    trace = write_trace(tmp_path / "t.csv", tasks, extra=("cache_hit",))
    out = tmp_path / "sim.csv"
    result = ok(run(trace, "--nodes", "1x1", "--policies", "hash", "--out", out))
    assert "cache of 3 keys per node (estimated), a miss adds 1 s (estimated)" in result.stderr
    df = rows_of(out).sort_values("task_id")
    assert df["run_s"].tolist() == pytest.approx([1.25] * 3 + [0.25] * 9)


# -- churn -----------------------------------------------------------------------------------------


def test_kill_busiest_and_add(tmp_path: Path) -> None:
    # Nodes n000, n001 of 1 CPU; four 1 s tasks; greedy; dispatch 125 ms; at 0.5 the busiest node dies
    # (both run one task: the tie goes to n000) and n002 (1 CPU) joins.
    # t=0: tasks 0 -> n000, 1 -> n001 (least allocated, ties by id); they start at 0.125.
    # t=0.5: task 0 is lost: a retried row (attempt 1, on n000), attempt 2 goes back to the brain at 0.5.
    #        The call at 0.5 places task 2 on n002 (the only room); it runs 0.625-1.625.
    # t=1.125: task 1 ends; overcommit 2: task 3 -> n001 (empty), task 0 -> n001 (n001 and n002 both full:
    #        tie, by id), queued. Task 3 runs 1.25-2.25, task 0 2.25-3.25.
    trace = write_trace(tmp_path / "t.csv", [{} for _ in range(4)])
    out = tmp_path / "sim.csv"
    ok(
        run(
            trace,
            "--nodes",
            "2x1",
            "--dispatch-ms",
            125,
            "--policies",
            "greedy",
            "--kill-node",
            0.5,
            "--add-node",
            "0.5:1",
            "--out",
            out,
        )
    )
    df = rows_of(out)
    lost = df[df["status"] == "retried"]
    assert lost[["task_id", "attempt", "node_chosen"]].values.tolist() == [[0, 1, "n000"]]
    assert lost["error"].iloc[0].startswith("NodeDiedError")
    done = df[df["status"] == "ok"].set_index("task_id").sort_index()
    assert done["node_ran"].tolist() == ["n001", "n001", "n002", "n001"]
    assert done["attempt"].tolist() == [2, 1, 1, 1]
    assert done["started_at"].tolist() == pytest.approx([2.25, 0.125, 0.625, 1.25])
    assert done.loc[0, "submitted_at"] == pytest.approx(0.5)
    runs = sidecar.read_runs(out)
    assert runs["sim-greedy-r1"]["churn"]["kill"] == [{"at": 0.5, "node": "n000"}]


def test_kill_of_the_only_fitting_node(tmp_path: Path) -> None:
    # Tasks 0 and 1 need ssd, which only n001 has; task 2 needs a CPU. Before any finish the brain admits only
    # what runs now, so task 0 runs on n001 and task 1 waits in the brain; n001 dies at 0.5.
    # Task 0: lost (retried), and its new attempt is infeasible at once (the brain checks new tasks).
    # Task 1: never runs; it ends infeasible: the brain re-checks waiting tasks whose nodes left, and one that no
    # live node can hold is infeasible unless a node reported but not yet confirmed dead could (none here: the
    # simulated membership drops a killed node at once). Cancelled is only for tasks a live node could hold.
    ssd = {"demand": "CPU=1;ssd=1", "run_s": 2.0}
    trace = write_trace(tmp_path / "t.csv", [ssd, ssd, {}])
    out = tmp_path / "sim.csv"
    ok(
        run(
            trace,
            "--nodes",
            "1x1,1x1+ssd=1",
            "--dispatch-ms",
            10,
            "--policies",
            "pack",
            "--kill-node",
            "0.5:n001",
            "--out",
            out,
        )
    )
    rows = rows_of(out).sort_values(["task_id", "attempt"])
    assert list(rows[["task_id", "attempt", "status"]].itertuples(index=False, name=None)) == [
        (0, 1, "retried"),
        (0, 2, "infeasible"),
        (1, 1, "infeasible"),
        (2, 1, "ok"),
    ]


def test_tasks_no_node_will_take_end_cancelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A policy that never places: nothing runs, nothing can change; after 60 virtual seconds without progress
    # (plus twice any locality wait; this policy has none) the waiting tasks are cancelled and the run ends.
    (tmp_path / "stubborn.py").write_text("def never(task, view):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    trace = write_trace(tmp_path / "t.csv", [{}, {}])
    out = tmp_path / "sim.csv"
    ok(run(trace, "--nodes", "1x1", "--dispatch-ms", 10, "--policies", "stubborn:never", "--out", out))
    assert rows_of(out)["status"].tolist() == ["cancelled", "cancelled"]
    assert 60 < sidecar.read_runs(out)["sim-stubborn:never-r1"]["virtual_s"] < 61  # a poll every 50 ms until then


# -- determinism, output ------------------------------------------------------------------------------


def test_same_inputs_and_seed_give_the_same_output(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.csv", MIXED)
    outs = []
    for name in ("a.csv", "b.csv"):
        result = ok(
            run(
                trace,
                "--nodes",
                "3x2,1x2+ssd=2",
                "--seed",
                7,
                "--out",
                tmp_path / name,
                "--json",
                "--kill-node",
                1.0,
                "--add-node",
                "2:4",
            )
        )
        outs.append(result.stdout)
    assert outs[0] == outs[1]
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # ... and in fresh processes whose str hashes differ (no set or dict order may leak into placement).
    args = [
        sys.executable,
        "-c",
        "from raysched.cli import main; main()",
        "simulate",
        str(trace),
        "--nodes",
        "3x2,1x2+ssd=2",
        "--seed",
        "7",
        "--json",
        "--policies",
        "hash,p2c",
    ]
    args += ["--kill-node", "1.0", "--add-node", "2:4", "--out"]
    outputs = set()
    for seed in ("0", "1", "2", "3"):
        rows = tmp_path / f"seed{seed}.csv"
        done = subprocess.run(
            [*args, str(rows)],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert json.loads(done.stdout)["runs"]  # a result, not an empty answer that would agree with any other
        outputs.add((done.stdout, rows.read_bytes()))
    assert len(outputs) == 1


def test_out_rows_load_and_analyze_like_any_run(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.csv", MIXED[:60], extra=())
    out = tmp_path / "sim.csv"
    result = ok(run(trace, "--nodes", "2x2,1x2+ssd=2", "--policies", "hash,pack", "--out", out, "--json"))
    df = load([out])
    assert set(df["run_id"]) == {"sim-hash-r1", "sim-pack-r1"} and df["submitted_at"].min() == 0.0
    figures = {run["label"]: run["metrics"] for run in json.loads(result.stdout)["runs"]}
    again = summarize(df)
    for label in ("hash", "pack"):
        # What the rows themselves say (README, "Analyzing results"): 60 tasks, each ok once, none otherwise.
        rows = df[df["run_id"] == f"sim-{label}-r1"]
        ok_rows = rows[rows["status"] == "ok"]
        assert len(rows) == len(ok_rows) == 60 and sorted(ok_rows["task_id"]) == list(range(60))
        makespan = ok_rows["finished_at"].max() - ok_rows["started_at"].min()
        expected = {"tasks ok": 60, "throughput (tasks/s)": 60 / makespan, "nodes used": ok_rows["node_ran"].nunique()}
        for metric, value in expected.items():
            assert figures[label][metric] == pytest.approx(value), (label, metric)
            assert again.loc[metric, label] == pytest.approx(value), (label, metric)
    records = sidecar.read_runs(out)
    assert records["sim-hash-r1"]["cluster"]["nodes"][0] == {"node_id": "n000", "capacity": {"CPU": 2.0}}


def test_default_cluster_is_the_recorded_one(tmp_path: Path) -> None:
    nodes = [
        {"node_id": "ab" * 28, "capacity": {"CPU": 2.0, "memory": 1e9, "object_store_memory": 1e9}},
        {"node_id": "cd" * 28, "capacity": {"CPU": 1.0, "memory": 1e9}},
    ]
    trace = write_trace(tmp_path / "t.csv", [{} for _ in range(6)], nodes=nodes)
    out = tmp_path / "sim.csv"
    ok(run(trace, "--policies", "greedy", "--out", out))
    assert set(rows_of(out)["node_ran"]) <= {"ab" * 28, "cd" * 28}  # the recorded ids: the same hash ring


def test_plot_and_a_user_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A user policy as `raysched submit --policy module:Name` takes it: the first node (by id) with room.
    (tmp_path / "mypolicies.py").write_text(
        "def first(task, view):\n    return next((n for n in view.nodes if view.fits_now(n, task.resources)), None)\n"
    )
    monkeypatch.chdir(tmp_path)
    trace = write_trace(tmp_path / "t.csv", [{} for _ in range(8)])
    plot = tmp_path / "cmp.png"
    result = ok(run(trace, "--nodes", "2x2", "--policies", "mypolicies:first,random", "--plot", plot, "--json"))
    assert plot.read_bytes().startswith(b"\x89PNG")
    labels = [run["label"] for run in json.loads(result.stdout)["runs"]]
    assert labels == ["mypolicies:first", "random"]


@pytest.mark.parametrize("losses", [LOST_ATTEMPTS_LIMIT, LOST_ATTEMPTS_LIMIT + 1])
def test_a_task_lost_again_and_again_is_retried_as_the_runner_retries_it(tmp_path: Path, losses: int) -> None:
    # One 100 s task; a fresh node joins at k - 0.5 and the busiest node (the one running the task) dies at k,
    # for k = 1 .. losses. The runner's rule (raysched.driver.rules.retry_lost): an attempt lost with its node is
    # tried again while the task has lost at most LOST_ATTEMPTS_LIMIT; the next loss fails the task.
    trace = write_trace(tmp_path / "t.csv", [{"run_s": 100.0}])
    out = tmp_path / "sim.csv"
    churn = [arg for k in range(1, losses + 1) for arg in ("--add-node", f"{k - 0.5}:1", "--kill-node", k)]
    ok(run(trace, "--nodes", "1x1", "--dispatch-ms", 10, "--policies", "greedy", "--out", out, *churn))
    rows = rows_of(out).sort_values("attempt")
    retried = [(attempt, "retried") for attempt in range(1, LOST_ATTEMPTS_LIMIT + 1)]
    last = (LOST_ATTEMPTS_LIMIT + 1, "ok" if losses <= LOST_ATTEMPTS_LIMIT else "failed")
    assert list(rows[["attempt", "status"]].itertuples(index=False, name=None)) == [*retried, last]


def test_rows_without_a_key_are_read_as_keyed_by_task_id(tmp_path: Path) -> None:
    # The runner sends a task without a key (empty) keyed by its task id; simulate reads such rows the same way.
    trace = load_trace(write_trace(tmp_path / "t.csv", [{"key": ""}, {"key": "a"}, {"key": ""}, {"key": " "}]))
    assert trace.keys.tolist() == ["0", "a", "2", "3"]


def test_node_specs() -> None:
    assert parse_nodes("4x2,1x4") == [{"CPU": 2.0}] * 4 + [{"CPU": 4.0}]
    assert parse_nodes("2x8+GPU=1+ssd=2") == [{"CPU": 8.0, "GPU": 1.0, "ssd": 2.0}] * 2
    assert parse_add_node("5:16").capacities == ({"CPU": 16.0},)
    assert parse_add_node("5:2x8+GPU=1").capacities == ({"CPU": 8.0, "GPU": 1.0},) * 2
    assert parse_kill_node("2.5:n003").node == "n003" and parse_kill_node("3").node is None
    for bad in ("", "4", "x2", "4x", "4y2", "0x2", "4x2+ssd", "4x-1"):
        with pytest.raises(SimInputError):
            parse_nodes(bad)


# -- bad input ----------------------------------------------------------------------------------------


def _bad(tmp_path: Path, case: str) -> list[Any]:
    good = write_trace(tmp_path / "good.csv", [{"demand": "CPU=2"}, {}])
    if case == "not raysched":
        other = tmp_path / "other.csv"
        other.write_text("a,b\n1,2\n")
        return [other, "--nodes", "2x2"]
    if case == "no ok rows":
        return [write_trace(tmp_path / "f.csv", [{"status": "failed"}]), "--nodes", "2x2"]
    if case == "missing file":
        return [tmp_path / "nope.csv", "--nodes", "2x2"]
    if case == "empty file":
        empty = tmp_path / "e.csv"
        empty.write_text("")
        return [empty, "--nodes", "2x2"]
    if case == "bad number":
        broken = tmp_path / "n.csv"
        broken.write_text(good.read_text().replace(",1.0,CPU=1,", ",fast,CPU=1,"))
        return [broken, "--nodes", "2x2"]
    return {
        "bad nodes": [good, "--nodes", "4y2"],
        "infeasible": [good, "--nodes", "2x1"],
        "unknown run": [good, "--nodes", "2x2", "--run", "nope"],
        "no sidecar": [good],
        "nodes and config": [good, "--nodes", "2x2", "--config", ROOT / "configs" / "local.yaml"],
        "bad config": [good, "--config", tmp_path / "missing.yaml"],
        "bad kill": [good, "--nodes", "2x2", "--kill-node", "soon"],
        "unknown kill node": [good, "--nodes", "2x2", "--kill-node", "1:n999"],
        "bad add": [good, "--nodes", "2x2", "--add-node", "3"],
        "unknown policy": [good, "--nodes", "2x2", "--policies", "hash,nosuch"],
        "repeated policy": [good, "--nodes", "2x2", "--policies", "hash,hash"],
        "cache half given": [good, "--nodes", "2x2", "--cache-keys", "4"],
        "bad load factor": [good, "--nodes", "2x2", "--load-factor", "0.5"],
        "out exists": [good, "--nodes", "2x2", "--out", good],
    }[case]


@pytest.mark.parametrize(
    "case",
    [
        "not raysched",
        "no ok rows",
        "missing file",
        "empty file",
        "bad number",
        "bad nodes",
        "infeasible",
        "unknown run",
        "no sidecar",
        "nodes and config",
        "bad config",
        "bad kill",
        "unknown kill node",
        "bad add",
        "unknown policy",
        "repeated policy",
        "cache half given",
        "bad load factor",
        "out exists",
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path: Path, case: str) -> None:
    result = run(*_bad(tmp_path, case))
    assert result.exit_code == 2, (case, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert result.stdout == ""


def test_an_infeasible_demand_names_the_task(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.csv", [{}, {"demand": "CPU=1;GPU=1"}])
    result = run(trace, "--nodes", "2x4")
    assert result.exit_code == 2
    assert "task 1 demands {CPU: 1, GPU: 1}" in result.stderr


def test_virtual_ids_stay_unique_in_eight_characters() -> None:
    from raysched.sim.cluster import virtual_ids

    ids = virtual_ids(10_000)
    assert ids[0] == "n0000" and len({i[:8] for i in ids}) == 10_000
    assert np.all([len(i) <= 8 for i in virtual_ids(5, start=9_999_995)])


def test_a_what_if_on_many_nodes_prints_a_screenful_not_a_line_per_node(tmp_path: Path) -> None:
    """Issue 30: `simulate --nodes 1000x2` printed 976 lines, mostly its per-node table."""
    trace = write_trace(tmp_path / "t.csv", [{"key": f"k{i}", "run_s": 0.1} for i in range(600)])
    text = ok(run(trace, "--nodes", "200x2", "--policies", "random")).stdout
    table = text.split("Tasks per node", 1)[1].splitlines()
    shown = [line for line in table[3:] if line.strip() and "more" not in line]
    assert len(shown) == 12, table  # the 6 busiest and the 6 least busy of the run's nodes
    full = json.loads(ok(run(trace, "--nodes", "200x2", "--policies", "random", "--json")).stdout)
    listed = len(full["runs"][0]["nodes"])  # JSON still lists every node the run touched
    assert listed > 100
    hidden = next(line for line in table if "… " in line)
    assert int(hidden.split("…")[1].split()[0].replace(",", "")) == listed - 12
