"""Where should dispatch live? The same windowed no-op dispatch run by the driver, or by an actor
that hands results back to the driver in batches (the brain-dispatches design).

    python benchmarks/dispatch_site.py [--tasks 4000]

Prints tasks/s for both, at a window of 9 tasks in flight (the embedded
cluster's CPUs) and 288, two alternating rounds, on the embedded 4-node cluster.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raysched import cluster
from raysched.bench import compare as bench


def windowed(pinned: list[Any], n: int, window: int, sink: Callable[[list[Any]], None]) -> None:
    """Keep `window` no-op tasks in flight, round-robin over the pinned functions, until n are done."""
    targets = itertools.cycle(pinned)
    sent, in_flight = 0, []
    while sent < n or in_flight:
        while sent < n and len(in_flight) < window:
            in_flight.append(next(targets).remote())
            sent += 1
        ready, in_flight = ray.wait(in_flight, num_returns=1, timeout=1)
        if in_flight:
            more, in_flight = ray.wait(in_flight, num_returns=len(in_flight), timeout=0.005 if window > 64 else 0)
            ready += more
        sink(ray.get(ready))


def pinned_noops(nodes: list[str]) -> list[Any]:
    fn = ray.remote(bench.noop)
    return [
        fn.options(num_cpus=1, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
        for node in nodes
    ]


@ray.remote(num_cpus=0)
class Dispatcher:
    """Dispatches from inside an actor and queues the results for the driver to take."""

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.done = False

    def run(self, nodes: list[str], n: int, window: int) -> None:
        self.done = False
        windowed(pinned_noops(nodes), n, window, lambda got: self.rows.extend(got))
        self.done = True

    def take(self) -> tuple[list[Any], bool]:
        rows, self.rows = self.rows, []
        return rows, self.done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=4000)
    n = parser.parse_args().tasks
    with cluster.session(None, {}, cluster.DEFAULT_LOCAL_NODES):
        nodes = bench._ray_nodes()
        pinned = pinned_noops(nodes)
        actor = Dispatcher.options(max_concurrency=2).remote()
        bench.run_plain(2000, affinity=True)  # start the workers
        for _ in range(2):
            for window in (9, 288):
                got: list[Any] = []
                started = time.perf_counter()
                windowed(pinned, n, window, got.extend)
                print(
                    f"driver dispatch  window {window:4d}: {n / (time.perf_counter() - started):7.0f} tasks/s",
                    flush=True,
                )
                started = time.perf_counter()
                ref = actor.run.remote(nodes, n, window)
                total, done = 0, False
                while not done or total < n:
                    rows, done = ray.get(actor.take.remote())
                    total += len(rows)
                    if not rows:
                        time.sleep(0.005)
                ray.get(ref)
                print(
                    f"actor dispatch   window {window:4d}: {n / (time.perf_counter() - started):7.0f} tasks/s "
                    f"({total} results handed back)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
