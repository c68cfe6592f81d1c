"""Uneven demands, including a custom resource: where greedy and pack differ.

    raysched submit jobs/mixed_resources.py --policy greedy
    raysched submit jobs/mixed_resources.py --policy pack --max-inflight 4

Three kinds of task: small (1 CPU), wide (2 CPUs) and ssd (1 CPU plus one unit
of the custom resource `ssd`, which only one node of the embedded cluster has).
Each waits on simulated I/O for 50-150 ms. Greedy spreads work to the node with
the most room left (lower waits); pack fills the fullest node that still fits
(fewer nodes busy). With few tasks in flight (`--max-inflight`) pack keeps the
work on fewer nodes.
"""

import time

import raysched


@raysched.task(num_cpus=1)
def small(ms: int) -> dict:
    time.sleep(ms / 1000)
    return {"items": 1}


@raysched.task(num_cpus=2)
def wide(ms: int) -> dict:
    time.sleep(ms / 1000)
    return {"items": 2}


@raysched.task(num_cpus=1, resources={"ssd": 1})
def ssd(ms: int) -> dict:
    time.sleep(ms / 1000)
    return {"items": 1, "bytes": 1 << 20}


def tasks():
    kinds = (small, small, wide, ssd)
    for i in range(80):
        yield raysched.Task(kinds[i % len(kinds)], args=(50 + (i * 37) % 100,), key=f"k{i % 16}")
