"""The raylet health probe: dead raylets are told apart from live nodes that only run long tasks.

The probe of a killed node on a real cluster is covered by the churn test with
Ray's default health checks (the node leaves the brain within seconds only if
the probe confirms it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from conftest import fresh_driver_json, run_cli

LONG_JOB = """
import time
import raysched

def work(i):
    time.sleep({seconds})  # longer than a driver waits before it suspects a node that never finished
    return {{"items": 1}}

def tasks():
    for i in range({n}):
        yield raysched.Task(work, args=(i,), key=f"k{{i}}")
"""


def test_every_live_raylet_of_the_cluster_answers(address: str) -> None:
    count, unreachable = fresh_driver_json(
        address,
        "[len(nodes), sorted(unreachable_raylets(nodes))]",
        setup="from raysched.brain.node_health import unreachable_raylets;"
        "nodes = [n['NodeID'] for n in ray.nodes() if n['Alive']];",
    )
    assert count == 4 and unreachable == []


def test_long_tasks_never_get_a_live_node_dropped(address: str, tmp_path: Path) -> None:
    """Regression: nodes that finished nothing for 15 s (their tasks were long) were reported stalled and
    dropped for 30 s, so another submission found no alive node at all."""
    job, out = tmp_path / "long.py", tmp_path / "out.csv"
    job.write_text(LONG_JOB.format(seconds=17, n=9))  # one task per CPU of the shared cluster (1+2+2+4)
    started = time.time()
    done = run_cli("submit", str(job), "--address", address, "--out", str(out), "--quiet", "--policy", "random")
    assert done.code == 0, done.text
    status = json.loads(run_cli("status", "--address", address, "--json").out)
    left = [(t, node) for t, kind, node in status["membership_changes"] if kind == "leave" and t > started]
    assert left == [] and status["reported_dead"] == []  # every node answered its probe, none was dropped
    df = pd.read_csv(out)
    assert (df["status"] == "ok").sum() == 9 and df["run_s"].min() >= 17  # the tasks really ran that long
