"""Admission on shared nodes, as arithmetic over submissions (the brain's behaviour is in test_placement.py)."""

from __future__ import annotations

from raysched.brain.admission import MAX_SHARED_DEPTH, SHARED_QUEUE_S, admission, shared_depth
from raysched.brain.state import SubmissionState
from raysched.policies import PolicyOptions, build_policy


def submission(overcommit: float, adaptive: bool = False, task_s: float | None = None) -> SubmissionState:
    policy = build_policy("random", PolicyOptions(seed=0))
    return SubmissionState(policy=policy, info={}, overcommit=overcommit, adaptive=adaptive, task_s=task_s)


def test_one_submission_is_admitted_its_own_depth_and_several_the_shared_one() -> None:
    sub = submission(3.0)
    assert admission(sub, 1, 7.0) == 3.0
    assert admission(sub, 2, 7.0) == 7.0


def test_paced_depths_add_up_and_fixed_ones_do_not() -> None:
    assert shared_depth([submission(2.0, adaptive=True), submission(3.0, adaptive=True)]) == 5.0
    assert shared_depth([submission(2.0), submission(3.0)]) == 3.0
    assert shared_depth([submission(2.0, adaptive=True), submission(4.0)]) == 4.0
    assert shared_depth([]) == 1.0


def test_a_paced_submission_of_short_tasks_keeps_a_lease_turn_queued_up_to_the_cap() -> None:
    assert shared_depth([submission(2.0, adaptive=True, task_s=0.01)]) == 1.0 + SHARED_QUEUE_S / 0.01
    assert shared_depth([submission(2.0, adaptive=True, task_s=1e-6)]) == MAX_SHARED_DEPTH
    assert shared_depth([submission(2.0, adaptive=True, task_s=100.0)]) == 2.0
