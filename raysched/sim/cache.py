"""A node's cache of keys (an LRU of the last N keys it ran), as jobs/cache_affinity.py keeps datasets.

A task whose key is cached is a hit and touches it; a miss pays the miss cost
and its key enters the cache when that load ends (start + miss cost), so two
tasks of a key that start together on a cold node both miss, as they do for real.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict

__all__ = ["NodeCache"]


class NodeCache:
    """The keys one node holds, most recently used last."""

    __slots__ = ("capacity", "keys", "loading")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.keys: OrderedDict[str, None] = OrderedDict()
        self.loading: list[tuple[float, str]] = []  # heap of (load ends, key)

    def lookup(self, key: str, now: float, miss_s: float) -> bool:
        """Run a task of ``key`` at ``now``: True on a hit; a miss starts loading the key."""
        if self.loading and self.loading[0][0] <= now:
            self._settle(now)
        keys = self.keys
        if key in keys:
            keys.move_to_end(key)
            return True
        heapq.heappush(self.loading, (now + miss_s, key))
        return False

    def _settle(self, now: float) -> None:
        """Keys whose load has ended enter the cache, in the order they ended; the least recent leave."""
        keys = self.keys
        while self.loading and self.loading[0][0] <= now:
            _, key = heapq.heappop(self.loading)
            keys[key] = None
            keys.move_to_end(key)
            if len(keys) > self.capacity:
                keys.popitem(last=False)
