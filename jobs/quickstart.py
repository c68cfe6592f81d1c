"""Quickstart: 200 small keyed tasks, done in a few seconds on the embedded cluster.

    raysched submit jobs/quickstart.py
    raysched submit jobs/quickstart.py --policy p2c

Each task sums a small range and reports how many numbers it summed (`items`),
so the results CSV gets an `items` column and the summary an items/s figure.
Tasks with the same key (`user-0` … `user-19`) go to the same node under the
hash policy.
"""

import raysched


@raysched.task(num_cpus=1)
def add_up(n: int) -> dict:
    total = sum(range(n))
    return {"items": n, "total": total}


def tasks():
    for i in range(200):
        yield raysched.Task(add_up, args=(10_000 + i,), key=f"user-{i % 20}")
