"""random: uniform among the nodes where the task fits now; seeded.

Rejection sampling: draw random alive nodes until one fits (uniform among the
fitting ones, O(1) while most fit); after a few misses, list the fitting nodes
through the view's index (cheap exactly when few fit) and draw among them.
Both stages are uniform over the fitting nodes, so the mixture is too.

The list is kept per demand until room appears anywhere (`ResourceView.room_epoch`):
until then the fitting nodes only shrink as tasks are placed, so a draw from
the kept list that no longer fits is dropped from it and drawn again (still
uniform over the nodes that fit), without the blind draws first: they missed
on a full cluster, eight fit checks per decision. On a full cluster of 1,000
nodes, listing them for every decision was 20 fit checks per decision and two
thirds of the brain's time.
"""

from __future__ import annotations

import random

from raysched.core.view import ResourceView
from raysched.policies.base import PolicyOptions, TaskDemand

__all__ = ["Fitting", "RandomPolicy", "sample_fitting"]

TRIES = 8


Fitting = dict[object, tuple[tuple[int, int, int], list[str]]]  # demand signature -> (room epoch, nodes)


def sample_fitting(
    rng: random.Random, task: TaskDemand, view: ResourceView, kept: Fitting, exclude: str | None = None
) -> str | None:
    """A uniformly random node (other than ``exclude``) where the task fits now; ``kept`` holds the fitting
    nodes listed for each demand until room appears (a policy's own dict)."""
    demand = task.resources
    fits = view.fits_now
    rand = rng.random
    epoch, signature = view.room_epoch, task.signature
    entry = kept.get(signature)
    if entry is None or entry[0] != epoch:
        nodes = view.nodes
        n = len(nodes)
        for _ in range(TRIES):
            node = nodes[int(rand() * n)]
            if node != exclude and fits(node, demand):
                return node
        entry = kept[signature] = (epoch, view.fitting_nodes(demand))
    candidates = entry[1]
    while candidates:
        i = int(rand() * len(candidates))
        node = candidates[i]
        if node == exclude:
            if len(candidates) == 1:
                return None
            continue
        if fits(node, demand):
            return node
        candidates[i] = candidates[-1]  # full now: dropped until room appears
        candidates.pop()
    return None


class RandomPolicy:
    """Uniform random placement among fitting nodes (the baseline)."""

    name = "random"
    none_means_no_room = True  # None only when no node has room: the brain may skip equal demands

    def __init__(self, options: PolicyOptions | None = None) -> None:
        self.options = options if options is not None else PolicyOptions()
        self.rng = random.Random(self.options.seed)
        self._fitting: Fitting = {}

    def choose(self, task: TaskDemand, view: ResourceView) -> str | None:
        return sample_fitting(self.rng, task, view, self._fitting)
