"""CPU-bound work: hash a block of bytes many times, report items and bytes.

    raysched submit jobs/cpu_bound.py --policy greedy

Each task fills a 256 KiB block deterministically from its index and runs
SHA-256 over it `ROUNDS` times (real CPU work, about 20 ms per task here). It
returns `items` (blocks hashed) and `bytes` (bytes hashed), so the summary and
`raysched analyze` report items/s and bytes/s. Keys are unused: placement is by
resources only, so try greedy, p2c or random.
"""

import hashlib

import raysched

BLOCK = 256 * 1024
ROUNDS = 16
TASKS = 300


@raysched.task(num_cpus=1)
def digest(index: int) -> dict:
    block = index.to_bytes(8, "little") * (BLOCK // 8)
    state = b""
    for _ in range(ROUNDS):
        state = hashlib.sha256(state + block).digest()
    return {"items": ROUNDS, "bytes": ROUNDS * len(block)}


def tasks():
    for i in range(TASKS):
        yield raysched.Task(digest, args=(i,))
