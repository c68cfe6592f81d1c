"""Tasks of one length, for the simulator's fidelity table (short, medium and long tasks).

    SLEEP_TASK_MS=5 SLEEP_TASKS=2000 raysched submit benchmarks/fidelity_jobs/sleep_tasks.py

Each task sleeps SLEEP_TASK_MS milliseconds (default 50) and reports one item;
SLEEP_TASKS tasks (default 400), keyed over 32 keys.
"""

import os
import time

import raysched


@raysched.task(num_cpus=1)
def nap(ms: float) -> dict:
    time.sleep(ms / 1000)
    return {"items": 1}


def tasks():
    ms = float(os.environ.get("SLEEP_TASK_MS", "50"))
    n = int(os.environ.get("SLEEP_TASKS", "400"))
    for i in range(n):
        yield raysched.Task(nap, args=(ms,), key=f"k{i % 32}")
