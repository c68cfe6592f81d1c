"""Each attempt as a CSV row, and an ok attempt's share of the run's totals."""

from __future__ import annotations

from raysched.driver import remote
from raysched.driver.attempts import Attempt
from raysched.results.outcome import RunOutcome
from raysched.results.schema import Row, Status


def attempt_row(
    run_id: str, job: str, policy: str, a: Attempt, status: Status, error: str = "", out: remote.Outcome | None = None
) -> Row:
    """The attempt's row; with the node's report (`out`), where and when it ran."""
    row = Row(
        run_id=run_id,
        job=job,
        policy=policy,
        task_id=a.task_id,
        key=a.key,
        attempt=a.attempt,
        status=status.value,
        error=error,
        node_chosen=a.node,
        submitted_at=a.submitted_at,
        demand=a.demand_text,
        spill=a.spill,
        brain_wait_s=a.brain_wait_s,
        replica=a.replica,
        via=a.via,
        executor=a.executor,
    )
    if out is not None:
        row.node_ran, row.started_at, row.finished_at = out.node_ran, out.started_at, out.finished_at
        row.wait_s = out.started_at - a.submitted_at
        row.run_s = out.finished_at - out.started_at
    return row


def count_ok(outcome: RunOutcome, a: Attempt, out: remote.Outcome) -> None:
    """Add an attempt that ended ok to the run's totals (what `raysched submit` prints at the end)."""
    o = outcome
    o.ok += 1
    o.per_node[out.node_ran] += 1
    o.ran(a.key, a.replica or out.node_ran, a.task_id)  # a call's key belongs to its replica
    if a.replica:
        o.calls += 1
        o.per_replica[a.replica] += 1
    if a.spill:
        o.spilled(a.key, a.task_id, a.spill)
    o.brain_wait_s += a.brain_wait_s or 0.0
    o.timed(a.submitted_at, out.started_at, out.finished_at)
    o.add_metrics(out.metrics)
