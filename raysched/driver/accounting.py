"""Each attempt as a CSV row, and an ok attempt's share of the run's totals."""

from __future__ import annotations

from raysched.driver import remote
from raysched.driver.attempts import Attempt
from raysched.policies.key_capacity import CACHE_HIT
from raysched.results.outcome import KeyHomes, RunOutcome
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
        row.latency_s = latency(a)
    return row


def latency(a: Attempt) -> float | None:
    """Seconds from taking the attempt in (the caller's send) to its result reaching the driver; None before."""
    return None if a.received_at is None else a.received_at - a.submitted_at


def count_ok(outcome: RunOutcome, a: Attempt, out: remote.Outcome) -> None:
    """Add an attempt that ended ok to the run's totals (what `raysched submit` prints at the end): a task's
    figures by node, a call's by replica."""
    o = outcome
    o.ok += 1
    o.per_node[out.node_ran] += 1
    if a.replica:  # a call's key belongs to its replica
        o.calls += 1
        o.per_replica[a.replica] += 1
        nodes = o.replica_nodes.setdefault(a.replica, [])
        if not nodes or nodes[-1] != out.node_ran:
            nodes.append(out.node_ran)
        o.router_wait_s += a.brain_wait_s or 0.0
        o.call_latency.add(latency(a))
        o.call_wait.add(out.started_at - a.submitted_at)
        o.call_run.add(out.finished_at - out.started_at)
        keys, place = o.call_keys, a.replica
    else:
        o.brain_wait_s += a.brain_wait_s or 0.0
        o.latency.add(latency(a))
        keys, place = o.task_keys, out.node_ran
    keys.ran(a.key, place, a.task_id)
    if a.spill:
        keys.spilled(a.key, a.task_id, a.spill)
    o.timed(a.submitted_at, out.started_at, out.finished_at)
    o.add_metrics(out.metrics)
    hit = out.metrics.get(CACHE_HIT)
    if hit is not None:
        total, reported = o.node_hits.get(out.node_ran, (0.0, 0))
        o.node_hits[out.node_ran] = (total + hit, reported + 1)


def count_node_reports(
    keys: KeyHomes,
    a: Attempt,
    out: remote.Outcome,
    hits: dict[str, tuple[int, int]],
    runs: dict[str, tuple[float, int]],
) -> None:
    """Add an ok task to what the driver tells the brain of its node (before `count_ok` records its key there).

    ``hits``: per node (cache hits, tasks reporting ``cache_hit``), only for keys that ran on that node before:
    a key's first task on a node misses wherever it goes, and counting those cold starts made the node that took
    the most new keys look like it thrashed (`raysched.policies.key_capacity`). ``runs``: per node (run seconds,
    tasks), hits only when the task reports ``cache_hit``: the node's speed, not its cold cache
    (`raysched.policies.node_speed`). Calls to a service count in neither.
    """
    if a.call is not None:
        return
    node = out.node_ran
    hit = out.metrics.get(CACHE_HIT)
    if hit is not None and keys.been_at(a.key, node):
        hit_count, tasks = hits.get(node, (0, 0))
        hits[node] = (hit_count + (hit >= 0.5), tasks + 1)
    if hit is None or hit >= 0.5:
        seconds, tasks = runs.get(node, (0.0, 0))
        runs[node] = (seconds + out.finished_at - out.started_at, tasks + 1)
