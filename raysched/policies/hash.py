"""hash: consistent hashing with bounded loads (owner by key, spill clockwise).

A task goes to the ring successor of its key, so tasks with one key land on
the node holding that key's warm state. With ``load_factor`` c it skips a node
already holding more than its share ``ceil(c * (T + 1) * w / W)`` of the
``T`` tasks in flight (Mirrokni–Thorup–Zadimoghaddam) and walks clockwise to
the first node under its bound. Nodes that could never hold the task are
skipped; if the first node under its bound has no room right now, the task
waits for it (returns None) rather than spilling to any free slot, so keys stay
home on a busy cluster and move only when the bound says so. With ``load_factor``
None (``off``, the pure ring) a key's tasks wait for its owner, the first node
clockwise that could ever hold them, so a key never leaves its node while the
node lives.

The ring is synced lazily to ``view.version``: only the nodes that joined,
left or changed capacity are added/removed, so keys move minimally. Ring
weight = CPU capacity relative to the largest node seen at the first sync
(fixed afterwards, so later joins never rescale the ring): that node gets
``vnodes`` points, a half-size node half as many.
"""
from __future__ import annotations

import math
from raysched.policies.base import PolicyOptions, TaskDemand, check_feasible
from raysched.ring import HashRing, RingConfig
from raysched.view import ResourceView

__all__ = ["HashPolicy"]

# After this many non-fitting nodes, ask the view's index whether anything
# fits at all before walking the rest of the ring.
_PRECHECK_AFTER = 8


class HashPolicy:
    """Key-affine placement with bounded loads."""

    name = "hash"

    def __init__(self, options: PolicyOptions | None = None) -> None:
        self.options = options if options is not None else PolicyOptions()
        self.ring = HashRing(RingConfig(vnodes=self.options.vnodes))
        self._weights: dict[str, float] = {}  # node -> ring weight
        self._ref: float | None = None
        self._synced: tuple[int, int] | None = None  # (view.uid, view.version)

    def sync(self, view: ResourceView) -> None:
        """Bring the ring to the view's membership, moving only the difference."""
        nodes = view.nodes
        if self._ref is None and nodes:
            self._ref = max(view.weight(n) for n in nodes)
        ring, weights = self.ring, self._weights
        alive = set(nodes)
        for n in [n for n in weights if n not in alive]:
            ring.remove(n)
            del weights[n]
        for n in nodes:
            w = view.weight(n) / self._ref  # type: ignore[operator]
            old = weights.get(n)
            if old == w:
                continue
            if old is not None:
                ring.remove(n)
            ring.add(n, w)
            weights[n] = w
        self._synced = (view.uid, view.version)

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None:
        if self._synced != (view.uid, view.version):
            self.sync(view)
        demand = task.resources
        check_feasible(view, demand)
        fits = view.fits_now
        misses = 0
        c = self.options.load_factor
        if c is None:
            # Pure ring: the key's owner is the first node clockwise that could ever
            # hold the task; wait for it rather than spill, so a key never moves.
            for node in self.ring.successors(task.key):
                if view.could_hold(node, demand):
                    return node if fits(node, demand) else None
            return None
        # mtz_bound(c, T, w, W) for every node, with the per-call part computed once (hot path)
        factor = c * (view.total_tasks_in_flight + 1) / self.ring.total_weight
        in_flight = view.tasks_in_flight
        weights = self._weights
        over_bound = 0
        for node in self.ring.successors(task.key):
            if in_flight(node) + 1 > math.ceil(factor * weights[node] - 1e-9):
                over_bound += 1  # over its bound: walk on (the cheap test first, on the hot path)
                if over_bound == _PRECHECK_AFTER and not view.any_fits_now(demand):
                    return None
                continue
            if fits(node, demand):
                return node
            if view.could_hold(node, demand):
                # The first node under its bound is the key's home for now: wait for it.
                # Spilling to any free slot would scatter keys whenever the cluster is busy;
                # the bound alone decides when a key moves.
                return None
        return None
