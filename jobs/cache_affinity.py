"""Keyed work with a node-local cache: why hash placement pays.

    raysched submit jobs/cache_affinity.py --policy hash
    raysched submit jobs/cache_affinity.py --policy random
    raysched analyze results/cache_affinity-*.csv

Every task needs its key's dataset. The first time a node sees a key it
"downloads" it (a 1 s fetch, as a model or shard from object storage) and keeps it in a cache
directory of its own (`$TMPDIR/raysched-cache/<run>/<node id>/`); later tasks of that key on
the same node read the file instead. Each task reports `cache_hit` (1 or 0),
`items` and `bytes`, so the CSV shows the hit rate per policy. Hash placement
sends a key's tasks to one node, so each key is fetched about once; random
placement fetches it on nearly every node.

The cache lives under a fresh run directory (made in `tasks()`), so every run
starts cold and runs compare fairly; each run leaves at most a few MB there
(`rm -r $TMPDIR/raysched-cache` clears them all).
"""
import os
import tempfile
import time
import uuid
from pathlib import Path

import ray

import raysched

KEYS = 72
TASKS_PER_KEY = 10
DATASET_BYTES = 32 * 1024  # small, so cold caches of many runs cost little disk
FETCH_S = 1.0
WORK_S = 0.005


def _fetch(key: str) -> bytes:
    """Stand-in for a slow remote read: latency, then the dataset's bytes."""
    time.sleep(FETCH_S)
    return key.encode().ljust(DATASET_BYTES, b".")


@raysched.task(num_cpus=1)
def process(key: str, run_dir: str) -> dict:
    node = ray.get_runtime_context().get_node_id()
    cache = Path(run_dir) / node
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{key}.bin"
    hit = path.exists()
    if hit:
        data = path.read_bytes()
    else:
        data = _fetch(key)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    time.sleep(WORK_S)  # the work on the loaded data
    return {"cache_hit": int(hit), "items": 1, "bytes": len(data)}


def tasks():
    run_dir = os.path.join(tempfile.gettempdir(), "raysched-cache", uuid.uuid4().hex[:12])
    for i in range(KEYS * TASKS_PER_KEY):
        key = f"dataset-{i % KEYS}"
        yield raysched.Task(process, args=(key, run_dir), key=key)
