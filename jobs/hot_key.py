"""A hot key: half of 800 tasks of 50 ms carry one key, the other half 20 cold keys.

Under hash with bounded loads the hot key spreads over as many nodes as its
share of the work needs; with `--load-factor off` (the pure ring) it stays on
one node, which then finishes long after the others:

    raysched submit jobs/hot_key.py --config configs/even.yaml
    raysched submit jobs/hot_key.py --config configs/even.yaml --load-factor off
"""

import time

import raysched


def work(i):
    time.sleep(0.05)
    return {"items": 1}


def tasks():
    for i in range(800):
        yield raysched.Task(work, args=(i,), key="hot" if i % 2 == 0 else f"cold-{i % 40}")
