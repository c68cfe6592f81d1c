"""`raysched bench`: the figures' arithmetic (pure), and smoke runs on the shared loopback cluster.

Speed targets are measured by the benchmark itself (README, Performance), never asserted here.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import JOBS, run_cli

from raysched import bench


def run(mode: str, finished: list[float], first_submit: float = 0.0, launched: float = -1.0) -> bench.DriverRun:
    return bench.DriverRun(mode, 10.0, 1, len(finished), launched, first_submit, finished)


def test_steady_state_counts_completions_between_the_10th_and_90th_percentile() -> None:
    # 101 finishes, one every 0.01 s from 1.00 to 2.00: p10 = 1.10, p90 = 1.90 (linear interpolation);
    # 81 completions in [1.10, 1.90] over 0.80 s = 101.25 tasks/s
    finished = [1 + i / 100 for i in range(101)]
    r = run("x", finished, first_submit=0.5, launched=0.0)
    assert r.steady_tasks_per_s == pytest.approx(81 / 0.8)
    assert r.whole_tasks_per_s == pytest.approx(101 / 1.5)  # first submission 0.5 to last finish 2.0
    assert r.startup_s == pytest.approx(1.0)  # launch 0.0 to first finish 1.0
    assert bench.steady_rate([1.0, 2.0]) != bench.steady_rate([1.0, 2.0])  # too few to say: nan


def test_summary_ratios_are_against_plain_rays_hard_affinity() -> None:
    runs = [
        run(bench.PLAIN_AFFINITY, [i / 100 for i in range(101)]),  # 81 / 0.8 = 101.25 /s
        run("raysched-random", [i / 50 for i in range(101)]),
    ]  # twice as long: 50.625 /s
    rows = {r["mode"]: r for r in bench.summarize(runs)}
    assert rows["raysched-random"]["steady_ratio"] == pytest.approx(0.5)
    # added time per task: 1e6 x (1/50.625 - 1/101.25) = 9,876.5 us
    assert rows["raysched-random"]["added_us_per_task"] == pytest.approx(1e6 * (1 / 50.625 - 1 / 101.25))


def test_default_task_counts_aim_at_about_eight_seconds_of_work() -> None:
    # 8 slots: 50 ms tasks -> 160 /s -> 1,280; 10 ms -> 800 /s -> 6,400; shorter ones cap at 2,000 /s
    assert [bench.default_tasks(ms, 8) for ms in (50, 10, 1, 0)] == [1280, 6400, 16000, 16000]
    assert bench.default_tasks(5000, 8) == 1000  # never fewer than 1,000


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


@pytest.mark.parametrize(
    "args, words",
    [
        (["--policies", "hash,fastest"], ["fastest", "unknown policy"]),
        (["--policies", " , "], ["at least one policy"]),
        (["--task-ms", "10,fast"], ["--task-ms", "comma-separated"]),
    ],
)
def test_bench_refuses_bad_input(args: list[str], words: list[str]) -> None:
    result = run_cli("bench", "--address", "127.0.0.1:1", *args, timeout=120)
    assert result.code == 2 and "Traceback" not in result.text, result.text
    for word in words:
        assert word in result.err
