"""greedy and pack: one node-resources policy with two strategies (Kubernetes ``noderesources``).

* **greedy** = least allocated: the node with the most of the demanded
  resources left after placing the task (``leastRequestedScore``);
* **pack** = most allocated / best fit: the node left fullest, so few nodes
  stay busy and whole nodes stay free for big tasks.

Scores are averaged over the demanded resources, each as a fraction of the
node's capacity, so CPUs and bytes mix; ties go to the smallest node id.

Not a scan: the view keeps nodes ordered by allocated share of the demanded
resources, grouped by capacity class, so the best fitting node of each class is
one bisect away and only one candidate per class is scored (O(classes log n)).
Beyond 64 distinct capacity shapes (e.g. per-node ``memory``) it scores a
seeded sample of 16 classes first (kube-scheduler's percentageOfNodesToScore),
and falls back to all classes when none of the sample fits.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence

from raysched.core.view import OrderedIndex, ResourceView
from raysched.policies.base import PolicyOptions, TaskDemand

__all__ = [
    "LEAST_ALLOCATED",
    "MOST_ALLOCATED",
    "NodeResourcesPolicy",
    "least_allocated_score",
    "most_allocated_score",
]

LEAST_ALLOCATED = "least-allocated"
MOST_ALLOCATED = "most-allocated"
MAX_CLASSES = 64
SAMPLE_CLASSES = 16

Score = Callable[[Mapping[str, float], Mapping[str, float], Mapping[str, float]], float]


def _mean_fraction(
    capacity: Mapping[str, float], reserved: Mapping[str, float], demand: Mapping[str, float], used: bool
) -> float:
    """Mean over the demanded resources of the fraction of capacity used (or left) after placing ``demand``."""
    total, m = 0.0, 0
    for r, a in demand.items():
        if a > 0:
            c = capacity.get(r, 0.0)
            if c <= 0:
                return -math.inf
            after = reserved.get(r, 0.0) + a
            total += (after if used else c - after) / c
            m += 1
    return total / m if m else 0.0


def least_allocated_score(
    capacity: Mapping[str, float], reserved: Mapping[str, float], demand: Mapping[str, float]
) -> float:
    """Mean fraction of capacity left after placing ``demand`` (greedy: higher wins).

    ``mean over demanded r of (capacity[r] - reserved[r] - demand[r]) / capacity[r]``;
    0.0 for an empty demand; ``-inf`` when the node has none of a demanded
    resource. Overcommit is not clamped: a node holding a queue beyond its
    capacity scores below 0 and still ranks by how far over it is.
    """
    return _mean_fraction(capacity, reserved, demand, used=False)


def most_allocated_score(
    capacity: Mapping[str, float], reserved: Mapping[str, float], demand: Mapping[str, float]
) -> float:
    """Mean fraction of capacity in use after placing ``demand`` (pack: higher wins).

    ``mean over demanded r of (reserved[r] + demand[r]) / capacity[r]``; 0.0 for
    an empty demand; ``-inf`` when the node has none of a demanded resource.
    """
    return _mean_fraction(capacity, reserved, demand, used=True)


class NodeResourcesPolicy:
    """Best node by a least- or most-allocated score over the nodes where the task fits now."""

    none_means_no_room = True  # None only when no node has room: the brain skips equal demands

    def __init__(self, options: PolicyOptions | None = None, strategy: str = LEAST_ALLOCATED) -> None:
        if strategy not in (LEAST_ALLOCATED, MOST_ALLOCATED):
            raise ValueError(f"strategy must be {LEAST_ALLOCATED!r} or {MOST_ALLOCATED!r}, got {strategy!r}")
        self.options = options if options is not None else PolicyOptions()
        self.strategy = strategy
        self.name = "greedy" if strategy == LEAST_ALLOCATED else "pack"
        self.most_allocated = strategy == MOST_ALLOCATED
        self.score: Score = most_allocated_score if self.most_allocated else least_allocated_score
        self.rng = random.Random(self.options.seed if self.options.seed is not None else 0)

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None:
        if not task.names:  # an empty demand fits everywhere: rank by dominant share
            nodes = view.nodes
            if not nodes:
                return None
            sign = -1.0 if self.most_allocated else 1.0
            return min(nodes, key=lambda n: (sign * view.load(n), n))
        idx = view.ordered_index(task.names, descending=self.most_allocated)
        keys = idx.class_keys
        if len(keys) > MAX_CLASSES:
            sample = [keys[i] for i in self.rng.sample(range(len(keys)), SAMPLE_CLASSES)]
            picked = self._best_over(view, idx, sample, task)
            if picked is not None:
                return picked
        return self._best_over(view, idx, keys, task)

    def _best_over(
        self, view: ResourceView, idx: OrderedIndex, class_keys: Sequence[tuple[float, ...]], task: TaskDemand
    ) -> str | None:
        """The best fitting node over the given capacity classes: (-score, node id) is the objective."""
        demand = task.resources
        best: tuple[float, str] | None = None
        for caps in class_keys:
            found = next(view.fitting_in_class(idx, caps, demand, task.amounts), None)
            if found is not None:
                cand = (-self.score(view.capacity(found), view.reserved(found), demand), found)
                if best is None or cand < best:
                    best = cand
        return None if best is None else best[1]
