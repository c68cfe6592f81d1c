"""Keyed tasks whose cache is a module-level LRU in each worker process (as most Python caches are).

    raysched submit benchmarks/fidelity_jobs/worker_lru.py --policy hash
    raysched simulate --validate results.csv

Each Ray worker process keeps the datasets of its last CACHE_KEYS keys in a
module-level LRU; a key not there costs a FETCH_S load before WORK_S of work.
Two workers of one node do not share their caches, so a key that runs on
every worker of its node is loaded once per worker: the cache's scope is the
worker process, not the node (`raysched simulate --cache-scope worker`).
Environment: WORKER_LRU_TASKS (default 1200), WORKER_LRU_KEYS (default 40).
"""

import os
import time
from collections import OrderedDict

import raysched

CACHE_KEYS = 8
FETCH_S = 0.05
WORK_S = 0.002
_CACHE: "OrderedDict[str, bytes]" = OrderedDict()  # this worker process's datasets


@raysched.task(num_cpus=1)
def process(key: str) -> dict:
    data = _CACHE.get(key)
    hit = data is not None
    if data is None:
        time.sleep(FETCH_S)  # the slow load
        data = key.encode() * 64
        _CACHE[key] = data
        if len(_CACHE) > CACHE_KEYS:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    time.sleep(WORK_S)
    return {"cache_hit": int(hit), "items": 1}


def tasks():
    n = int(os.environ.get("WORKER_LRU_TASKS", "1200"))
    keys = int(os.environ.get("WORKER_LRU_KEYS", "40"))
    for i in range(n):
        key = f"k{(i * 7919) % keys}"
        yield raysched.Task(process, args=(key,), key=key)
