"""`raysched bench`: the figures' arithmetic (pure), and smoke runs on the shared loopback cluster.

Speed targets are measured by the benchmark itself (README, Performance), never asserted here.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import JOBS, run_cli


def test_bench_prints_the_overhead_curve_against_plain_ray(address: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.csv"
    result = run_cli(
        "bench",
        "--address",
        address,
        "--task-ms",
        "0,5",
        "--tasks",
        "300",
        "--rounds",
        "1",
        "--policies",
        "hash",
        "--out",
        str(out),
        timeout=600,
    )
    assert result.code == 0, result.text
    for mode in ("ray-default", "ray-affinity-rr", "raysched-hash"):
        assert result.out.count(mode) == 2  # one line per task length
    assert result.err.count("round 1") == 6  # 2 task lengths x 3 modes, each a fresh driver
    rows = list(csv.DictReader(out.open()))
    assert {(float(r["task_ms"]), r["mode"]) for r in rows} == {
        (ms, m) for ms in (0.0, 5.0) for m in ("ray-default", "ray-affinity-rr", "raysched-hash")
    }
    for ms in (0.0, 5.0):
        by_mode = {r["mode"]: r for r in rows if float(r["task_ms"]) == ms}
        base = float(by_mode["ray-affinity-rr"]["steady_tasks_per_s"])
        mine = by_mode["raysched-hash"]
        assert float(mine["steady_ratio"]) == pytest.approx(float(mine["steady_tasks_per_s"]) / base)
        assert int(mine["tasks"]) == 300 and float(mine["startup_s"]) > 0
        assert 0.5 <= float(mine["decisions_per_task"]) <= 3  # about one decision per task


def test_bench_on_a_job_compares_policies(address: str, tmp_path: Path) -> None:
    job = tmp_path / "tiny_cache.py"
    text = (JOBS / "cache_affinity.py").read_text()
    job.write_text(
        text.replace("KEYS = 72", "KEYS = 6")
        .replace("TASKS_PER_KEY = 10", "TASKS_PER_KEY = 3")
        .replace("FETCH_S = 0.1", "FETCH_S = 0.02")
    )
    result = run_cli(
        "bench", "--address", address, "--job", str(job), "--policies", "hash,random", "--rounds", "1", timeout=600
    )
    assert result.code == 0, result.text
    lines = {line.split()[0]: line.split() for line in result.out.splitlines() if line.strip()}
    assert lines["hash"][-1] == "1.00x"  # the first policy is the reference
    # The ratio is random's tasks/s over hash's. The columns are printed to 0.1 and the ratio to 0.01, so the
    # printed ratio lies between the quotients of the columns' rounding bounds (each +-0.05), +-0.005.
    random_tps, hash_tps = float(lines["random"][1]), float(lines["hash"][1])
    low, high = (random_tps - 0.05) / (hash_tps + 0.05), (random_tps + 0.05) / (hash_tps - 0.05)
    assert low - 0.005 <= float(lines["random"][-1].rstrip("x")) <= high + 0.005, result.out
    assert lines["hash"][-2].endswith("%") and lines["random"][-2].endswith("%")  # cache hit rates
