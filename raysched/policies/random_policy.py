"""random: uniform among the nodes where the task fits now; seeded.

Rejection sampling: draw random alive nodes until one fits (uniform among the
fitting ones, O(1) while most fit); after a few misses, list the fitting nodes
through the view's index (cheap exactly when few fit) and draw among them.
Both stages are uniform over the fitting nodes, so the mixture is too.
"""

from __future__ import annotations

import random

from raysched.core.view import ResourceView
from raysched.policies.base import PolicyOptions, TaskDemand

__all__ = ["RandomPolicy", "sample_fitting"]

TRIES = 8


def sample_fitting(rng: random.Random, task: TaskDemand, view: ResourceView, exclude: str | None = None) -> str | None:
    """A uniformly random node (other than ``exclude``) where the task fits now."""
    nodes = view.nodes
    n = len(nodes)
    demand = task.resources
    fits = view.fits_now
    rand = rng.random
    for _ in range(TRIES):
        node = nodes[int(rand() * n)]
        if node != exclude and fits(node, demand):
            return node
    candidates = view.fitting_nodes(demand)
    if exclude is not None and exclude in candidates:
        candidates.remove(exclude)
    if not candidates:
        return None
    return candidates[int(rand() * len(candidates))]


class RandomPolicy:
    """Uniform random placement among fitting nodes (the baseline)."""

    name = "random"
    none_means_no_room = True  # None only when no node has room: the brain may skip equal demands

    def __init__(self, options: PolicyOptions | None = None) -> None:
        self.options = options if options is not None else PolicyOptions()
        self.rng = random.Random(self.options.seed)

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None:
        return sample_fitting(self.rng, task, view)
