"""Admission on shared nodes: how much reserved demand a node may hold while placing for a submission.

A node may hold reserved demand up to ``capacity x overcommit`` of the
submission being placed: running work plus a short queue at the node, sized by
each driver from its own round trip and task times. While several submissions
share the nodes, their depths add up (`shared_depth`).

Pure arithmetic over the submissions' state: it reads ``overcommit``,
``adaptive`` and ``task_s`` of each `SubmissionState` and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from raysched.brain.state import SubmissionState

# Ray hands a node's worker to another job at least every lease turn when several jobs queue work there (its
# worker_lease_timeout_milliseconds, 500 ms by default), and a job whose queue there runs dry ends its turn early.
# While several submissions share the nodes, each keeps SHARED_QUEUE_S of its own work queued per slot. Measured
# with 4 drivers of 10 ms tasks on 4 x 2 CPUs (steady state over plain Ray): 0.5 s 0.64x, 1 s 0.76x, 2 s 0.82x.
LEASE_TURN_S = 0.5
SHARED_QUEUE_S = 4 * LEASE_TURN_S
MAX_SHARED_DEPTH = 256.0  # tasks per slot one submission may ask for on that account


def admission(sub: SubmissionState, submissions: int, shared: float) -> float:
    """How much a node may hold while placing for ``sub``: with one submission, the depth it asked for.

    With several (``submissions`` > 1), ``shared``: the sum of the depths their
    pacing asked for, each at least SHARED_QUEUE_S of its own tasks (see
    `shared_share`; fixed ``--overcommit`` depths are not added), counted over
    every submission's work: each keeps about the queue its own round trip
    needs at each node. A shallower shared queue lets a driver's queue at a
    node run dry between its brain calls; Ray then hands the node's worker
    lease to another driver's job, whose worker it may first have to start
    (Ray keeps idle workers of other jobs only about a second), and four
    drivers spent most of the machine starting workers (17 tasks/s
    together against plain Ray's 300 on 4 x 2 CPUs).
    """
    return shared if submissions > 1 else sub.overcommit


def shared_depth(subs: Iterable[SubmissionState]) -> float:
    """The admission several submissions share (see `admission`): the sum of the depths their pacing asked
    for, and never less than the deepest fixed ``--overcommit`` (a fixed depth is a limit on the node's whole
    queue, so fixed depths are not added up)."""
    subs = list(subs)
    adaptive = sum(shared_share(s) for s in subs if s.adaptive)
    fixed = max((s.overcommit for s in subs if not s.adaptive), default=1.0)
    return max(1.0, adaptive, fixed)


def shared_share(sub: SubmissionState) -> float:
    """What one paced submission adds to the shared depth: its own depth, and at least SHARED_QUEUE_S of its work.

    Ray lets a job keep a node's worker for up to a lease turn while it has
    tasks queued there. A queue that runs dry ends the turn early, and the next
    job may have to start a worker first; four drivers on 4 x 2 CPUs spent most
    of the machine doing that.
    """
    if sub.task_s is None:
        return sub.overcommit
    return max(sub.overcommit, min(MAX_SHARED_DEPTH, 1.0 + SHARED_QUEUE_S / sub.task_s))
