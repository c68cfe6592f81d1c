"""End-of-run summary and live progress for `raysched submit`, on the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from raysched.results.figures import RATE_METRICS, capacity_imbalance, imbalance, per_s
from raysched.results.outcome import RunOutcome
from raysched.results.schema import Status, short_node


def format_summary(outcome: RunOutcome, job: str, policy: str) -> str:
    """The table printed after a run: outcomes, throughput, placement, and how evenly nodes were loaded.

    The makespan (first task start to last finish), tasks/s (ok tasks / makespan) and the start-up
    (first submission to first start) are `raysched analyze`'s figures, from the same clock
    (`raysched.results.figures`).
    """
    lines = [
        f"raysched: {job} under {policy}  (run {outcome.run_id})",
        f"  tasks ok      {outcome.ok}" + (_calls_note(outcome) if outcome.calls else ""),
        f"  tasks failed  {outcome.failed}",
    ]
    for label, count in (
        (Status.RETRIED.value, outcome.retried),
        (Status.CANCELLED.value, outcome.cancelled),
        (Status.INFEASIBLE.value, outcome.infeasible),
        ("skipped (resume)", outcome.skipped),
    ):
        if count:
            lines.append(f"  {label:<13} {count}")
    makespan = outcome.makespan_s
    lines.append(f"  wall time     {outcome.wall_s:.2f} s (cluster and driver start included)")
    if outcome.ok:
        startup = outcome.startup_s
        lines.append(f"  start-up      {startup:.2f} s (first submission to first task start: Ray starting workers)")
        lines.append(f"  makespan      {makespan:.2f} s (first task start to last finish; the rates count over it)")
        lines.append(f"  tasks/s       {outcome.tasks_per_s:.1f}")
        for metric in RATE_METRICS:
            if metric in outcome.metric_sums and makespan > 0:
                rate = per_s(outcome.metric_sums[metric], makespan)
                lines.append(f"  {metric}/s{'':<{7 - len(metric)}}     {rate:.1f}")
    if outcome.per_node:
        counts = outcome.per_node
        weights = outcome.node_weights
        by_capacity = capacity_imbalance(counts, weights)
        balance = f"max/mean tasks per node {imbalance(counts.values()):.2f}"
        if by_capacity == by_capacity:  # known for every node used
            balance = f"max/mean by capacity {by_capacity:.2f} (1.00: in proportion to CPUs), {balance}"
        lines.append(f"  nodes used    {len(counts)}   {balance}")
        for node, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            size = f"  {weights[node]:g} CPU{'' if weights[node] == 1 else 's'}" if node in weights else ""
            lines.append(f"    {short_node(node)}  {count:>8}  {count / outcome.ok:6.1%}{size}")
    if outcome.per_replica:
        _replica_lines(outcome, lines)
    _key_lines(outcome, lines)
    if outcome.hit_rate is not None:
        lines.append(
            f"  cache hits    {outcome.hit_rate:.1f}% (mean cache_hit of {outcome.metric_counts['cache_hit']} ok tasks)"
        )
    if outcome.ok:
        lines.append(_wait_line(outcome))
    tasks = outcome.ok - outcome.calls  # the brain decides tasks; a service's router (in the driver) decides calls
    if outcome.brain_decisions is not None and tasks > 0:
        per_attempt = outcome.brain_decisions / max(1, tasks + outcome.retried)
        lines.append(f"  decisions     {outcome.brain_decisions} ({per_attempt:.2f} per task attempt, by the brain)")
    for note in outcome.notes:
        lines.append(f"  note: {note}")
    if outcome.stopped_early:
        lines.append(f"  {outcome.stopped_early}")
    if outcome.interrupted:
        lines.append("  interrupted: in-flight tasks were cancelled; rerun with --resume to finish")
    if outcome.out_path is not None:
        lines.append(f"  results       {outcome.out_path}")
    return "\n".join(lines)


def _calls_note(outcome: RunOutcome) -> str:
    if outcome.calls == outcome.ok:
        return " (all calls to a service)"
    return f" ({outcome.calls} of them calls to a service)"


def _replica_lines(outcome: RunOutcome, lines: list[str]) -> None:
    """Ok calls per replica, busiest first, and how evenly the replicas were loaded."""
    counts = outcome.per_replica
    lines.append(f"  replicas used {len(counts)}   max/mean calls per replica {imbalance(counts.values()):.2f}")
    for replica, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"    {replica:<12}{count:>8}  {count / outcome.calls:6.1%}")


def _key_lines(outcome: RunOutcome, lines: list[str]) -> None:
    """Key affinity and spills, only for tasks with keys of their own, and whether spilled keys moved whole."""
    affinity = outcome.key_affinity
    keys = len(outcome.key_node)
    where = "replica" if outcome.calls == outcome.ok else "node or replica" if outcome.calls else "node"
    if affinity is not None:
        lines.append(f"  key affinity  {affinity:.0%} of {keys} keys ran on one {where}")
    elif outcome.unkeyed and not outcome.keys_untracked:
        lines.append("  keys          none (the tasks have no keys: no affinity or spills to count)")
    if outcome.spills:
        parts = ", ".join(f"{count} {reason}" for reason, count in sorted(outcome.spills.items()))
        lines.append(
            f"  spilled       {sum(outcome.spills.values())} tasks placed off their key's ring owner ({parts}; "
            "bound = the owner was at its bounded load, so the key lived elsewhere; wait = it stayed busy past the "
            "locality wait; spread = a hot key's other nodes)"
        )
        spilled = len(outcome.spilled_keys)
        if spilled and not outcome.keys_untracked:
            whole = outcome.keys_moved_whole
            lines.append(
                f"                of their {spilled} keys, {whole} moved whole (every task of the key on one "
                f"other {where}: affinity kept), {spilled - whole} split over several"
            )
    if outcome.hot_keys:
        hottest = outcome.hot_keys[0]
        lines.append(
            f"  hot keys      {outcome.keys_spread or len(outcome.hot_keys)} spread over several nodes by their "
            f"share of the work; the hottest, {hottest['key']!r}, on up to {hottest['nodes']} nodes "
            f"({hottest['share']:.1%} of recent tasks)"
        )


def _wait_line(outcome: RunOutcome) -> str:
    per_task = outcome.brain_wait_s / outcome.ok * 1000
    if outcome.calls == outcome.ok:
        return f"  router wait   {per_task:.1f} ms per call on average (held by the router until a replica had room)"
    if outcome.calls:
        return (
            f"  brain wait    {per_task:.1f} ms per task or call on average (held by the brain until a node had "
            "room, or by the router until a replica had)"
        )
    return f"  brain wait    {per_task:.1f} ms per task on average (held by the brain until its node had room)"


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
