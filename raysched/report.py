"""End-of-run summary and live progress for `raysched submit`, on the terminal."""
from __future__ import annotations

import sys
from typing import Callable, TextIO

from tqdm import tqdm

from raysched.runner import RunOutcome


def short(node_id: str) -> str:
    """Node ids are 56 hex characters; 8 tell them apart on any cluster of sane size."""
    return node_id[:8]


def format_summary(outcome: RunOutcome, job: str, policy: str, csv_path: str) -> str:
    """The table printed after a run: outcomes, throughput, and how evenly nodes were loaded."""
    wall = max(outcome.wall_s, 1e-9)
    lines = [
        f"raysched: {job} under {policy}  (run {outcome.run_id})",
        f"  tasks ok      {outcome.ok}",
        f"  tasks failed  {outcome.failed}",
    ]
    for label, count in (("retried", outcome.retried), ("cancelled", outcome.cancelled),
                         ("infeasible", outcome.infeasible), ("skipped (resume)", outcome.skipped)):
        if count:
            lines.append(f"  {label:<13} {count}")
    lines += [f"  wall time     {outcome.wall_s:.2f} s", f"  tasks/s       {outcome.ok / wall:.1f}"]
    for metric in ("items", "bytes"):
        if metric in outcome.metric_sums:
            lines.append(f"  {metric}/s{'':<{7 - len(metric)}}     {outcome.metric_sums[metric] / wall:.1f}")
    if outcome.per_node:
        counts = outcome.per_node
        mean = sum(counts.values()) / len(counts)
        lines.append(f"  nodes used    {len(counts)}   max/mean tasks per node {max(counts.values()) / mean:.2f}")
        for node, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"    {short(node)}  {count:>8}  {count / outcome.ok:6.1%}")
    for note in outcome.notes:
        lines.append(f"  note: {note}")
    if outcome.stopped_early:
        lines.append(f"  {outcome.stopped_early}")
    if outcome.interrupted:
        lines.append("  interrupted: in-flight tasks were cancelled; rerun with --resume to finish")
    lines.append(f"  results       {csv_path}")
    return "\n".join(lines)


class Progress:
    """A tqdm bar on stderr (done/total when known, tasks/s, failures); silent when not wanted."""

    def __init__(self, total: Callable[[], int | None], enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.enabled = enabled and stream.isatty()
        self._total = total
        self._bar = tqdm(unit="task", file=stream, dynamic_ncols=True) if self.enabled else None
        self._shown = 0

    def update(self, outcome: RunOutcome, in_flight: int) -> None:
        if self._bar is None:
            return
        if self._bar.total is None and self._total() is not None:
            self._bar.total = self._total()
        done = outcome.ok + outcome.failed
        if done != self._shown:
            self._bar.update(done - self._shown)
            self._shown = done
            self._bar.set_postfix(failed=outcome.failed, running=in_flight, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
