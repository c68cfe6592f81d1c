"""End-of-run summary and live progress for `raysched submit`, on the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from raysched.results.figures import RATE_METRICS, capacity_imbalance, imbalance, per_s, work_unit
from raysched.results.outcome import KeyHomes, RunOutcome
from raysched.results.samples import Samples
from raysched.results.schema import Status, short_node


def format_summary(outcome: RunOutcome, job: str, policy: str) -> str:
    """The table printed after a run: outcomes, throughput, latency, placement, and how evenly work was spread.

    Tasks are told in task terms (nodes, the brain's wait and decisions, spills off a key's ring owner) and calls
    to a service in call terms (replicas, queue wait and service time, keys by replica); a run of both shows both.
    The makespan (first start to last finish), tasks/s (ok tasks / makespan), the start-up (first submission to
    first start) and the latency quantiles are `raysched analyze`'s figures, from the same clock
    (`raysched.results.figures`).
    """
    o = outcome
    unit = work_unit(o.tasks, o.calls)  # a run of calls only speaks of calls throughout
    lines = [
        f"raysched: {job} under {policy}  (run {o.run_id})",
        f"  {unit} ok      {o.ok}" + (_calls_note(o) if o.calls else ""),
        f"  {unit} failed  {o.failed}",
    ]
    for label, count in (
        (Status.RETRIED.value, o.retried),
        (Status.CANCELLED.value, o.cancelled),
        (Status.INFEASIBLE.value, o.infeasible),
        ("skipped (resume)", o.skipped),
    ):
        if count:
            lines.append(f"  {label:<13} {count}")
    started = "cluster, driver and replicas' start" if o.per_replica else "cluster and driver start"
    lines.append(f"  wall time     {o.wall_s:.2f} s ({started} included)")
    if o.ok:
        _rate_lines(o, unit, lines)
    if o.per_node and o.tasks:  # a run of calls only shows its replicas' nodes with the replicas
        _node_lines(o, lines)
    if o.per_replica:
        _replica_lines(o, lines)
    if o.tasks or not o.ok:
        _task_key_lines(o, "task " if o.calls else "", lines)
    if o.calls:
        _call_key_lines(o, "call " if o.tasks else "", lines)
    if o.hit_rate is not None:
        which = "tasks and calls" if o.calls and o.tasks else unit
        lines.append(f"  cache hits    {o.hit_rate:.1f}% (mean cache_hit of {o.metric_counts['cache_hit']} ok {which})")
    if o.tasks:
        _task_timing_lines(o, lines)
    if o.calls:
        _call_timing_lines(o, lines)
    if o.brain_decisions is not None and o.tasks > 0:  # the brain decides tasks; a router in the driver, calls
        per_attempt = o.brain_decisions / max(1, o.tasks + o.retried)
        lines.append(f"  decisions     {o.brain_decisions} ({per_attempt:.2f} per task attempt, by the brain)")
    for note in o.notes:
        lines.append(f"  note: {note}")
    if o.stopped_early:
        lines.append(f"  {o.stopped_early}")
    if o.interrupted:
        lines.append(f"  interrupted: in-flight {unit} were cancelled; rerun with --resume to finish")
    if o.out_path is not None:
        lines.append(f"  results       {o.out_path}")
    return "\n".join(lines)


def _calls_note(outcome: RunOutcome) -> str:
    services = ", ".join(sorted({replica.rpartition("#")[0] for replica in outcome.per_replica}))
    if not outcome.tasks:
        return f" (all calls to {services})"
    return f" ({outcome.calls} of them calls to {services})"


def _rate_lines(outcome: RunOutcome, unit: str, lines: list[str]) -> None:
    """Start-up, makespan and the rates over it."""
    makespan = outcome.makespan_s
    first = unit[:-1]
    why = (
        "first call sent to first call start; the replicas were up before"
        if unit == "calls"
        else ("first submission to first task start: Ray starting workers")
    )
    lines.append(f"  start-up      {outcome.startup_s:.2f} s ({why})")
    lines.append(f"  makespan      {makespan:.2f} s (first {first} start to last finish; the rates count over it)")
    both = outcome.calls and outcome.tasks
    lines.append(f"  {unit}/s       {outcome.tasks_per_s:.1f}" + (" (tasks and calls)" if both else ""))
    if both:
        lines.append(f"  calls/s       {per_s(outcome.calls, makespan):.1f}")
    for metric in RATE_METRICS:
        if metric in outcome.metric_sums and makespan > 0:
            rate = per_s(outcome.metric_sums[metric], makespan)
            lines.append(f"  {metric}/s{'':<{7 - len(metric)}}     {rate:.1f}")


def _node_lines(outcome: RunOutcome, lines: list[str]) -> None:
    """Ok work per node, busiest first, and how evenly the nodes were loaded (by capacity, and by count)."""
    counts = outcome.per_node
    weights = outcome.node_weights
    by_capacity = capacity_imbalance(counts, weights)
    what = "tasks and calls" if outcome.calls else "tasks"
    balance = f"max/mean {what} per node {imbalance(counts.values()):.2f}"
    if by_capacity == by_capacity:  # known for every node used
        balance = f"max/mean by capacity {by_capacity:.2f} (1.00: in proportion to CPUs), {balance}"
    lines.append(f"  nodes used    {len(counts)}   {balance}")
    keys = outcome.task_keys
    for node, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        size = f"  {weights[node]:g} CPU{'' if weights[node] == 1 else 's'}" if node in weights else ""
        held = keys.keys_at(node)  # distinct keys its tasks ran: what its cache had to hold
        held_text = f"  {held:>5} key{'' if held == 1 else 's'}" if held is not None else ""
        rate = outcome.node_hit_rate(node)
        hit_text = f"  hits {rate:5.1f}%" if rate is not None else ""
        lines.append(f"    {short_node(node)}  {count:>8}  {count / outcome.ok:6.1%}{size}{held_text}{hit_text}")


def _replica_lines(outcome: RunOutcome, lines: list[str]) -> None:
    """Ok calls per replica, busiest first, the node(s) each served from, and how evenly they were loaded."""
    counts = outcome.per_replica
    nodes = {node for served in outcome.replica_nodes.values() for node in served}
    on = f" on {len(nodes)} node{'' if len(nodes) == 1 else 's'}" if nodes else ""
    lines.append(f"  replicas used {len(counts)}{on}   max/mean calls per replica {imbalance(counts.values()):.2f}")
    for replica, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        served = " -> ".join(short_node(node) for node in outcome.replica_nodes.get(replica, ()))
        where = f"  on {served}" if served else ""
        lines.append(f"    {replica:<12}{count:>8}  {count / outcome.calls:6.1%}{where}")


def _task_key_lines(outcome: RunOutcome, kind: str, lines: list[str]) -> None:
    """Key affinity by node and spills off a key's ring owner, only for tasks with keys of their own."""
    keys = outcome.task_keys
    _affinity_line(keys, f"{kind}keys ran on one node", "the tasks have no keys: no affinity or spills to count", lines)
    if keys.spills:
        lines.append(
            f"  spilled       {sum(keys.spills.values())} tasks placed off their key's ring owner ({_reasons(keys)}; "
            "bound = the owner was at its bounded load, so the key lived elsewhere; wait = it stayed busy past the "
            "locality wait; spread = a hot key's other nodes)"
        )
        spilled = len(keys.spilled_keys)
        if spilled and not keys.untracked:
            lines.append(
                f"                of their {spilled} keys, {keys.moved_whole} moved whole (every task of the key on "
                f"one other node: affinity kept), {spilled - keys.moved_whole} split over several"
            )
    if outcome.hot_keys:
        hottest = outcome.hot_keys[0]
        lines.append(
            f"  hot keys      {outcome.keys_spread or len(outcome.hot_keys)} spread over several nodes by their "
            f"share of the work; the hottest, {hottest['key']!r}, on up to {hottest['nodes']} nodes "
            f"({hottest['share']:.1%} of recent tasks)"
        )


def _call_key_lines(outcome: RunOutcome, kind: str, lines: list[str]) -> None:
    """Key affinity by replica, and the keys that live on a replica other than their ring owner (hash)."""
    keys = outcome.call_keys
    _affinity_line(keys, f"{kind}keys ran on one replica", "the calls have no keys: no affinity to count", lines)
    if not keys.spills:
        return
    moved = len(keys.spilled_keys)
    of_keys = f" of {moved} keys" if moved and not keys.untracked else ""
    lines.append(
        f"  off owner     {sum(keys.spills.values())} calls{of_keys} went to a replica other than their key's ring "
        f"owner ({_reasons(keys)}; bound = the owner replica had its bounded load of calls when the key came, so "
        "the key lives on another; spread = a hot key's other replicas)"
    )
    if moved and not keys.untracked:
        lines.append(
            f"                {keys.moved_whole} of those keys moved whole (all their calls on one other replica: "
            f"affinity kept), {moved - keys.moved_whole} split over several"
        )


def _affinity_line(keys: KeyHomes, ran: str, no_keys: str, lines: list[str]) -> None:
    """``key affinity  X% of N <ran>``, or that the work has no keys of its own (``no_keys``)."""
    if keys.affinity is not None:
        lines.append(f"  key affinity  {keys.affinity:.0%} of {keys.keys} {ran}")
    elif keys.unkeyed and not keys.untracked:
        lines.append(f"  keys          none ({no_keys})")


def _reasons(keys: KeyHomes) -> str:
    """Spills by reason, in name order: ``2 bound, 1 wait``."""
    return ", ".join(f"{count} {reason}" for reason, count in sorted(keys.spills.items()))


def _task_timing_lines(outcome: RunOutcome, lines: list[str]) -> None:
    """Tasks' latency (taken in to result back) and their wait in the brain."""
    label = "task latency" if outcome.calls else "latency"
    lines.append(_quantile_line(label, outcome.latency, "taken in to its result back in the driver"))
    per_task = outcome.brain_wait_s / outcome.tasks * 1000
    lines.append(f"  brain wait    {per_task:.1f} ms per task on average (held by the brain until its node had room)")


def _call_timing_lines(outcome: RunOutcome, lines: list[str]) -> None:
    """Calls' latency from the caller's send to the result, their queue wait and their service time."""
    label = "call latency" if outcome.tasks else "latency"
    lines.append(_quantile_line(label, outcome.call_latency, "a call's send to its result back in the driver"))
    router = outcome.router_wait_s / outcome.calls * 1000
    lines.append(
        _quantile_line(
            "queue wait",
            outcome.call_wait,
            f"send to start on its replica; {router:.1f} ms of it on average in the router, until the replica had room",
        )
    )
    lines.append(_quantile_line("service time", outcome.call_run, "the method's own run on its replica"))


def _quantile_line(label: str, samples: Samples, meaning: str) -> str:
    """``label  p50 X  p95 Y (meaning)``, or where to find them when the run had too many to keep."""
    p50, p95 = samples.quantile(0.5), samples.quantile(0.95)
    if p50 is None or p95 is None:
        told = f"see raysched analyze ({samples.count:,} values)" if samples.given_up else "not measured"
        return f"  {label:<13} {told} ({meaning})"
    return f"  {label:<13} p50 {_duration(p50)}  p95 {_duration(p95)} ({meaning})"


def _duration(seconds: float) -> str:
    """Milliseconds below a second (one decimal), else seconds."""
    return f"{seconds * 1000:.1f} ms" if abs(seconds) < 1 else f"{seconds:.2f} s"


class Progress:
    """A tqdm bar on stderr (done/total when known, tasks/s, failures); silent when not wanted."""

    def __init__(self, total: Callable[[], int | None], enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.enabled = enabled and stream.isatty()
        self._total = total
        self._bar = tqdm(unit="task", file=stream, dynamic_ncols=True) if self.enabled else None
        self._shown = 0

    def update(self, outcome: RunOutcome, held: int) -> None:
        if self._bar is None:
            return
        if self._bar.total is None and self._total() is not None:
            self._bar.total = self._total()
        done = outcome.ok + outcome.failed
        if done != self._shown:
            self._bar.update(done - self._shown)
            self._shown = done
            self._bar.set_postfix(failed=outcome.failed, held=held, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
