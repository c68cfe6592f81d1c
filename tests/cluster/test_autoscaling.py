"""A run's service follows its load on a real cluster: `replicas=(1, 3)` starts one replica, grows by ``Name#k``
while calls queue beyond the target, never past its high count, and every call is ok exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from conftest import run_cli

JOB = """
import time
import raysched

@raysched.service(num_cpus=1, replicas=(1, 3), autoscale=raysched.Autoscale(target=2, up_delay_s=0.5))
class Slow:
    def serve(self, key, i):
        time.sleep(0.05)
        return {"items": 1}

def tasks():
    for i in range(240):
        key = f"key-{i % 24}"
        yield raysched.Task(Slow.serve, args=(key, i), key=key)
"""


def test_a_service_under_load_grows_past_its_low_count_and_every_call_is_ok_once(address: str, tmp_path: Path) -> None:
    job, out = tmp_path / "slow_job.py", tmp_path / "out.csv"
    job.write_text(JOB)
    result = run_cli("submit", str(job), "--address", address, "--out", str(out), "--quiet")
    assert result.code == 0, result.text
    df = pd.read_csv(out)
    ok = df[df["status"] == "ok"]
    assert sorted(ok["task_id"]) == list(range(240))  # every call exactly one ok row
    replicas = set(ok["replica"])
    assert "Slow#0" in replicas and len(replicas) >= 2, replicas  # it grew: a new index took calls
    assert replicas <= {"Slow#0", "Slow#1", "Slow#2"}  # never past its high count
    (run,) = json.loads(out.with_suffix(".json").read_text())["runs"]
    events = run["replicas"]
    created = [e["replica"] for e in events if e["event"] == "created"]
    assert created[0] == "Slow#0" and "Slow#1" in created
