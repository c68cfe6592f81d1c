"""A plain Ray driver for `raysched bench`: the baseline raysched is measured against.

Run as a fresh process (``python -m raysched.bench.plain``), as a user's own
driver would be: it connects, submits every task at once ("submit all, get
all"), either with Ray's default scheduling or pinned round-robin to the
nodes with hard ``NodeAffinitySchedulingStrategy``, waits for all of them and
writes a JSON file with the times ``raysched bench`` needs (launch, first
submission, every task's finish).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def sleep_task(ms: float) -> float:
    """The benchmark task: sleep ``ms`` milliseconds (0 = a no-op); return when it finished."""
    if ms > 0:
        time.sleep(ms / 1000)
    return time.time()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--task-ms", type=float, required=True)
    parser.add_argument("--affinity", action="store_true", help="hard node affinity, round-robin over the nodes")
    parser.add_argument(
        "--actor-pool", action="store_true", help="ray.util.ActorPool over one 1-CPU actor per CPU of the cluster"
    )
    parser.add_argument("--launched-at", type=float, required=True, help="when the parent started this process")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from raysched.cluster import connect

    connect(args.address, {})
    if args.actor_pool:
        first_submit = time.time()  # the actors' start counts: a user's run pays it too
        finished = _actor_pool(args.tasks, args.task_ms)
        _write(args.out, args.launched_at, first_submit, finished)
        return
    fn = ray.remote(sleep_task)
    if args.affinity:
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0)
        pinned = [
            fn.options(num_cpus=1, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
            for node in nodes
        ]
        targets: Iterator[Any] = itertools.cycle(pinned)
    else:
        targets = itertools.repeat(fn.options(num_cpus=1, max_retries=0))
    first_submit = time.time()
    refs = [next(targets).remote(args.task_ms) for _ in range(args.tasks)]
    finished = ray.get(refs)
    _write(args.out, args.launched_at, first_submit, finished)


class Sleeper:
    """One slot of the hand-written peer: an actor that runs the benchmark task."""

    def run(self, ms: float) -> float:
        return sleep_task(ms)


def _actor_pool(tasks: int, ms: float) -> list[float]:
    """What a Ray user writes by hand for short tasks: an ActorPool of one 1-CPU actor per CPU, map_unordered."""
    import ray
    from ray.util import ActorPool

    slots = int(ray.cluster_resources().get("CPU", 1))
    actors = [ray.remote(Sleeper).options(num_cpus=1).remote() for _ in range(slots)]
    pool = ActorPool(actors)
    return list(pool.map_unordered(lambda actor, value: actor.run.remote(value), [ms] * tasks))


def _write(out: str, launched_at: float, first_submit: float, finished: list[float]) -> None:
    import ray

    Path(out).write_text(json.dumps({"launched_at": launched_at, "first_submit": first_submit, "finished": finished}))
    ray.shutdown()


if __name__ == "__main__":
    main()
