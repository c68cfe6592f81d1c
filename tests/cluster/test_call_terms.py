"""Issue 28, item 5, on a real loopback cluster: a run of calls to a service is told in call terms by `raysched
submit`'s summary and by `raysched analyze`, with each call's latency from its send to its result in the CSV, and
the sidecar records the pacing the calls were routed under. A run of tasks and calls tells each in its own terms.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from conftest import JOBS, ROOT, run_cli

MIXED_JOB = """
import time
import raysched

@raysched.service(num_cpus=1, replicas=2)
class Shard:
    def serve(self, key):
        time.sleep(0.01)
        return {{"items": 1}}

def work(i):
    with open({where!r}, "a") as fh:  # which raysched the worker imported
        fh.write(raysched.__file__ + "\\n")
    time.sleep(0.01)
    return {{"items": 1}}

def tasks():
    for i in range(120):
        if i % 2:
            yield raysched.Task(Shard.serve, args=(f"m{{i % 6}}",), key=f"m{{i % 6}}")
        else:
            yield raysched.Task(work, args=(i,), key=f"k{{i % 4}}")
"""


def ms(seconds: float) -> str:
    """A duration as the summary prints it: milliseconds below a second, else seconds."""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def line(text: str, start: str) -> str:
    found = [one for one in text.splitlines() if one.strip().startswith(start)]
    assert len(found) == 1, (start, text)
    return found[0]


def analyzed(out: Path) -> dict[str, float | None]:
    result = run_cli("analyze", str(out), "--json")
    assert result.code == 0, result.text
    return json.loads(result.out)["runs"][0]["metrics"]


def test_a_run_of_calls_speaks_of_calls_replicas_latency_and_its_pacing(address: str, tmp_path: Path) -> None:
    out = tmp_path / "calls.csv"
    result = run_cli(
        "submit", str(JOBS / "service_cache.py"), "--address", address, "--out", str(out), "--quiet",
        env={"SERVICE_CALLS": "600"},
    )  # fmt: skip
    assert result.code == 0, result.text
    text = result.out
    rows = pd.read_csv(out)
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == 600 and (ok["replica"] != "").all()

    # the new column: appended after every column there was, before the job's metrics
    header = list(rows.columns)
    assert header[header.index("executor") + 1] == "latency_s" and header.index("latency_s") < header.index("items")
    # send to result: it covers the service time and the queue wait, and first-come calls are not all fast
    assert (ok["latency_s"] >= ok["run_s"]).all()
    assert (ok["latency_s"] >= ok["wait_s"] + ok["run_s"] - 1e-6).all()  # one machine: one clock
    p50, p95 = ok["latency_s"].quantile(0.5), ok["latency_s"].quantile(0.95)
    assert 0 < p50 <= p95

    # the summary: calls, replicas, latency, queue wait, service time; nothing of tasks, the brain or spills
    assert "calls ok      600 (all calls to Shard)" in text and "calls failed  0" in text
    assert re.search(r"replicas used 4 on \d nodes", text), text
    assert f"p50 {ms(p50)}  p95 {ms(p95)}" in line(text, "latency")  # analyze's arithmetic, on the same rows
    wait50, run95 = ok["wait_s"].quantile(0.5), ok["run_s"].quantile(0.95)
    assert f"p50 {ms(wait50)}" in line(text, "queue wait") and f"p95 {ms(run95)}" in line(text, "service time")
    keys_on_one = (ok.groupby("key")["replica"].nunique() == 1).mean()
    assert f"key affinity  {keys_on_one:.0%} of 40 keys ran on one replica" in text
    assert f"cache hits    {ok['cache_hit'].mean() * 100:.1f}% (mean cache_hit of 600 ok calls)" in text
    for absent in ("decisions", "spilled", "tasks", "nodes used", "brain wait"):
        assert absent not in text, absent
    if (ok["spill"].fillna("") != "").any():
        assert "went to a replica other than their key's ring owner" in line(text, "off owner")

    # analyze: the same figures, in call terms, and no task spills
    figures = analyzed(out)
    assert figures["calls ok"] == 600
    assert abs(figures["call latency p50 (s)"] - p50) < 1e-9 and abs(figures["call latency p95 (s)"] - p95) < 1e-9
    assert figures["queue wait p50 (s)"] is not None and figures["service time p95 (s)"] is not None
    assert figures["key affinity by replica (%)"] == keys_on_one * 100
    assert "spilled (%)" not in figures and "spilled: bound" not in figures

    # the pacing the calls were routed under: no brain round trip, but the gap a replica's slot waits and the depth
    pacing = json.loads((tmp_path / "calls.json").read_text())["runs"][0]["pacing"]
    assert pacing["brain_rtt_s"] is None  # calls are routed in the driver
    assert 0 < pacing["gap_s"] < 1 and 0 <= pacing["notice_s"] < 1
    assert pacing["overcommit_max"] >= 1


def test_a_run_of_tasks_and_calls_tells_each_in_its_own_terms(address: str, tmp_path: Path) -> None:
    where = tmp_path / "imported.txt"
    job, out = tmp_path / "mixed.py", tmp_path / "mixed.csv"
    job.write_text(MIXED_JOB.format(where=str(where)))
    result = run_cli("submit", str(job), "--address", address, "--out", str(out), "--quiet")
    assert result.code == 0, result.text
    text = result.out
    assert {Path(p).resolve() for p in where.read_text().split()} == {ROOT / "raysched" / "__init__.py"}  # this tree
    ok = pd.read_csv(out).query("status == 'ok'")
    calls, tasks = ok[ok["replica"].fillna("") != ""], ok[ok["replica"].fillna("") == ""]
    assert len(calls) == len(tasks) == 60
    assert "tasks ok      120 (60 of them calls to Shard)" in text
    assert "(tasks and calls)" in line(text, "tasks/s")
    assert f"p50 {ms(tasks['latency_s'].quantile(0.5))}" in line(text, "task latency")
    assert f"p95 {ms(calls['latency_s'].quantile(0.95))}" in line(text, "call latency")
    assert f"{tasks['brain_wait_s'].mean() * 1000:.1f} ms per task" in line(text, "brain wait")
    assert "on average in the router" in line(text, "queue wait")
    assert "task keys ran on one node" in text and "call keys ran on one replica" in text
    figures = analyzed(out)
    assert figures["calls ok"] == 60 and figures["tasks ok"] == 120
    assert abs(figures["latency_s p50 (s)"] - ok["latency_s"].quantile(0.5)) < 1e-9  # every ok row
