"""greedy: least-allocated — the node with the most of the demanded resources
left after placing the task (Kubernetes ``leastRequestedScore``), multi-resource,
each as a fraction of capacity; ties to the smallest node id.

Not a scan: the view keeps nodes ordered by allocated share of the demanded
resources, grouped by capacity class, so the best fitting node of each class
is found with a bisect and only one candidate per class is scored
(O(classes * log n)). Why not a sample (kube-scheduler's
percentageOfNodesToScore): the ordered index is exact and still fast; it only
falls back to scoring a sample of classes when a cluster has more than 64
distinct capacity shapes for the demanded resources (e.g. per-node ``memory``).
"""
from __future__ import annotations

import random

from raysched.policies.base import (
    PolicyOptions,
    TaskDemand,
    best_indexed_node,
    check_feasible,
)
from raysched.scoring import least_allocated_score
from raysched.view import ResourceView

__all__ = ["GreedyPolicy"]


class GreedyPolicy:
    """Spread by least-allocated score."""

    name = "greedy"
    none_means_no_room = True  # None only when no node has room: the brain may skip equal demands
    most_allocated = False
    score = staticmethod(least_allocated_score)

    def __init__(self, options: PolicyOptions | None = None) -> None:
        self.options = options if options is not None else PolicyOptions()
        self.rng = random.Random(self.options.seed if self.options.seed is not None else 0)

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None:
        check_feasible(view, task.resources)
        return best_indexed_node(task, view, self.most_allocated, self.score, self.rng)
