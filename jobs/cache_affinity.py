"""Keyed work with a node-local cache: why hash placement pays.

    raysched submit jobs/cache_affinity.py --policy hash
    raysched submit jobs/cache_affinity.py --policy random
    raysched analyze results/cache_affinity-*.csv

Every task needs its key's dataset. A node keeps the datasets of its last
CACHE_KEYS keys (an LRU, in a cache directory of its own:
`$TMPDIR/raysched-cache/<run>/<node id>/`); any other key costs a 100 ms load
("download" from object storage) before the 5 ms of work. Each task reports
`cache_hit` (1 or 0), `items` and `bytes`, so the CSV shows the hit rate per
policy. Hash placement keeps each key on one node, so its dataset is loaded
about once; random placement loads it on nearly every node, and evicts more.

The cache lives under a fresh run directory (made in `tasks()`), so every run
starts cold and runs compare fairly; each run leaves a few MB there at most
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
CACHE_KEYS = 24  # datasets a node keeps (least recently used evicted)
DATASET_BYTES = 32 * 1024  # small, so cold caches of many runs cost little disk
FETCH_S = 0.1
WORK_S = 0.005


def _fetch(key: str) -> bytes:
    """Stand-in for a slow remote read: latency, then the dataset's bytes."""
    time.sleep(FETCH_S)
    return key.encode().ljust(DATASET_BYTES, b".")


def _evict(cache: Path) -> None:
    """Keep the CACHE_KEYS most recently used datasets of this node."""
    entries = []
    for path in cache.glob("*.bin"):
        try:
            entries.append((path.stat().st_mtime, path))
        except FileNotFoundError:  # another worker of this node evicted it
            continue
    for _, path in sorted(entries)[:-CACHE_KEYS]:
        path.unlink(missing_ok=True)


@raysched.task(num_cpus=1, keys_per_node=CACHE_KEYS)  # a node keeps CACHE_KEYS datasets: no node is given more
def process(key: str, run_dir: str) -> dict:
    node = ray.get_runtime_context().get_node_id()
    cache = Path(run_dir) / node
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{key}.bin"
    try:
        data = path.read_bytes()
        os.utime(path)  # most recently used
        hit = True
    except FileNotFoundError:
        data = _fetch(key)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
        _evict(cache)
        hit = False
    time.sleep(WORK_S)  # the work on the loaded data
    return {"cache_hit": int(hit), "items": 1, "bytes": len(data)}


def tasks():
    run_dir = os.path.join(tempfile.gettempdir(), "raysched-cache", uuid.uuid4().hex[:12])
    for i in range(KEYS * TASKS_PER_KEY):
        key = f"dataset-{i % KEYS}"
        yield raysched.Task(process, args=(key, run_dir), key=key)
