"""RunOutcome: the exit code a run ends with, from its counts, and the figures the summary reads off it."""

from __future__ import annotations

import math

import pytest

from raysched.results import outcome as outcome_module
from raysched.results.outcome import ExitCode, KeyHomes, RunOutcome


def test_every_task_ok_exits_0() -> None:
    assert RunOutcome("r", ok=5).exit_code == ExitCode.OK == 0


def test_nothing_run_at_all_is_still_ok() -> None:
    assert RunOutcome("r").exit_code == 0  # e.g. --resume with every task already done


def test_one_failed_task_exits_1_however_many_succeeded() -> None:
    assert RunOutcome("r", ok=999, failed=1).exit_code == ExitCode.FAILED == 1


def test_retries_and_cancellations_alone_do_not_fail_the_run() -> None:
    assert RunOutcome("r", ok=3, retried=4, cancelled=2, skipped=7).exit_code == 0


def test_an_infeasible_task_is_bad_input_even_beside_failures() -> None:
    assert RunOutcome("r", ok=1, failed=2, infeasible=1).exit_code == ExitCode.BAD_INPUT == 2


def test_an_interrupted_run_exits_130_over_everything_else() -> None:
    interrupted = RunOutcome("r", ok=1, failed=2, infeasible=3, interrupted=True)
    assert interrupted.exit_code == ExitCode.INTERRUPTED == 130


def test_makespan_runs_from_first_start_to_last_finish_and_start_up_is_apart() -> None:
    run = RunOutcome("r", ok=6, first_submitted=95.0, first_started=100.0, last_finished=103.0, wall_s=9.0)
    assert run.makespan_s == pytest.approx(3.0)
    assert run.tasks_per_s == pytest.approx(2.0)  # 6 ok / 3 s, not / the 8 s since submission or the 9 s of wall
    assert run.startup_s == pytest.approx(5.0)  # first submission 95 to first start 100


def test_timed_keeps_the_earliest_submission_and_start_and_the_latest_finish() -> None:
    run = RunOutcome("r")
    for times in [(10.0, 12.0, 13.0), (9.0, 12.5, 12.6), (11.0, 11.5, 14.0)]:
        run.timed(*times)
    assert (run.first_submitted, run.first_started, run.last_finished) == (9.0, 11.5, 14.0)
    assert run.makespan_s == pytest.approx(2.5) and run.startup_s == pytest.approx(2.5)


def test_no_finished_task_has_no_makespan_and_no_throughput() -> None:
    run = RunOutcome("r", first_submitted=100.0)
    assert run.makespan_s == 0.0
    assert math.isnan(run.tasks_per_s) and math.isnan(run.startup_s)


def test_key_affinity_is_the_share_of_keys_that_stayed_on_one_node() -> None:
    keys = RunOutcome("r").task_keys
    assert keys.affinity is None  # no ok task yet
    for key, node in [("a", "n1"), ("a", "n1"), ("b", "n1"), ("b", "n2"), ("c", "n2"), ("d", "n3")]:
        keys.ran(key, node)
    assert keys.split == {"b"}
    assert keys.affinity == pytest.approx(0.75)  # a, c, d of a, b, c, d


def test_too_many_keys_leave_affinity_to_analyze(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outcome_module, "KEYS_TRACKED", 3)
    keys = KeyHomes()
    for i in range(3):
        keys.ran(f"k{i}", "n1")
    assert keys.affinity == pytest.approx(1.0)
    keys.ran("k3", "n1")  # the fourth key: memory stays bounded, the figure is given up
    assert keys.untracked and keys.affinity is None
    assert not keys.home and not keys.split
    keys.ran("k0", "n2")
    assert keys.affinity is None  # and stays given up


def test_tasks_and_calls_keep_their_keys_apart() -> None:
    """A key used by a task (on node n1) and by a call (on replica Shard#0) is not split by the other kind."""
    run = RunOutcome("r", ok=3, calls=1)
    run.task_keys.ran("k", "n1")
    run.task_keys.ran("k", "n1")
    run.call_keys.ran("k", "Shard#0")
    assert run.task_keys.affinity == 1.0 and run.call_keys.affinity == 1.0
    assert run.tasks == 2


def test_counts_name_every_status_and_what_is_not_one() -> None:
    outcome = RunOutcome("r1", ok=3, failed=1, retried=2, cancelled=4, infeasible=5, skipped=6, interrupted=True)
    assert outcome.counts() == {
        "ok": 3,
        "failed": 1,
        "retried": 2,
        "cancelled": 4,
        "infeasible": 5,
        "skipped": 6,
        "interrupted": True,
    }


def test_pacing_records_the_deepest_queue_allowed_and_the_gaps_heard() -> None:
    run = RunOutcome("r")
    assert run.pacing() == {"brain_rtt_s": None, "notice_s": None, "gap_s": None, "overcommit_max": None}
    for overcommit in (1.0, 3.0, 2.0):
        run.paced(overcommit)
    run.gaps, run.gap_s = 4, 0.1
    assert run.pacing()["overcommit_max"] == 3.0  # the deepest, not the last
    assert run.pacing()["gap_s"] == pytest.approx(0.025)
    assert run.pacing()["brain_rtt_s"] is None  # no brain call (a run of calls only)
