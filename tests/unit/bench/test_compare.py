"""`raysched bench`: the figures' arithmetic (pure), and smoke runs on the shared loopback cluster.

Speed targets are measured by the benchmark itself (README, Performance), never asserted here.
"""

from __future__ import annotations

import pytest
from conftest import run_cli

from raysched.bench import compare as bench


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


def test_raysched_modes_carry_the_executors_setting_to_submit() -> None:
    assert bench.raysched_modes(["random", "hash"]) == ["raysched-random", "raysched-hash"]
    modes = bench.raysched_modes(["random"], ["auto", "off"])
    assert modes == ["raysched-random/executors=auto", "raysched-random/executors=off"]
    assert [bench.raysched_mode(m) for m in modes] == [("random", "auto"), ("random", "off")]
    assert bench.raysched_mode("raysched-hash") == ("hash", None)


def test_default_task_counts_aim_at_about_eight_seconds_of_work() -> None:
    # 8 slots: 50 ms tasks -> 160 /s -> 1,280; 10 ms -> 800 /s -> 6,400; shorter ones cap at 2,000 /s
    assert [bench.default_tasks(ms, 8) for ms in (50, 10, 1, 0)] == [1280, 6400, 16000, 16000]
    assert bench.default_tasks(5000, 8) == 1000  # never fewer than 1,000


@pytest.mark.parametrize(
    "args, words",
    [
        (["--policies", "hash,fastest"], ["fastest", "unknown policy"]),
        (["--policies", " , "], ["at least one policy"]),
        (["--task-ms", "10,fast"], ["--task-ms", "comma-separated"]),
        (["--executors", "on,sometimes"], ["--executors", "auto, on or off", "sometimes"]),
    ],
)
def test_bench_refuses_bad_input(args: list[str], words: list[str]) -> None:
    result = run_cli("bench", "--address", "127.0.0.1:1", *args, timeout=120)
    assert result.code == 2 and "Traceback" not in result.text, result.text
    for word in words:
        assert word in result.err
